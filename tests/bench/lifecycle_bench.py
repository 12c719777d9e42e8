"""`make bench-lifecycle`: the phase fold alone, events per second in one process.

Replays recorded-looking pod watch events (the replay examples' stages, for many workloads)
through the same engine as `fairway lifecycle replay` and the service.

Then (unless `--fold-only`) the latency end to end on the embedded stack: trainings published as
submission would, and for each the delay from the pod status change that decides a phase (the
last pod Ready → Running, the last pod Succeeded → Completed), as kubesim's kubelet wrote it
(its status log, CLOCK_MONOTONIC), to the phase event's arrival on NATS; then where that time
went (kubesim's delivery to a watcher, lifecycle's fold, waiting to be recorded, the recording
transaction and the relay).

    make bench-lifecycle     # the fold (4,000 workloads, 40,000 events), then issue 6's shape
                             # end to end: 1,000 trainings x 5 pods = 5,000 pods, 3 runs on a
                             # fresh stack each, the median p99 against the 500 ms target
    make bench-lifecycle BENCH_ARGS="--fold-only"
    make bench-lifecycle BENCH_ARGS="--e2e-runs 1 --e2e-workloads 150 --gpu 1"  # one-GPU pods
"""

import argparse
import gc
import itertools
import json
import statistics
import time
from pathlib import Path

from fairway_lifecycle.core.replay import replay
from tests.lifecycle.podfactory import pod

TARGET = 20_000


def events(workloads: int, pods_per_workload: int) -> list[str]:
    lines = []
    for w in range(workloads):
        wid = f"w{w}"
        lines.append(json.dumps({"type": "WORKLOAD", "object": {
            "workloadId": wid, "workloadType": "training", "pods": pods_per_workload}}))
        names = [f"{wid}-{i}" for i in range(pods_per_workload)]
        for stage in ("unbound", "pulling", "starting", "running", "succeeded"):
            for name in names:
                kind = "ADDED" if stage == "unbound" else "MODIFIED"
                lines.append(json.dumps({"type": kind, "object": pod(
                    name, workload=wid, stage=stage, node="a100-1")}))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", type=int, default=4000)
    parser.add_argument("--pods", type=int, default=2, help="pods per workload")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fold-only", action="store_true",
                        help="skip the end-to-end part")
    parser.add_argument("--e2e", action="store_true",
                        help="also run the end-to-end latency part on the embedded stack")
    parser.add_argument("--e2e-workloads", type=int, default=1000)
    parser.add_argument("--e2e-runs", type=int, default=3,
                        help="end-to-end runs, each on a fresh stack (the machine is noisy)")
    parser.add_argument("--gpu", type=int, default=0, help="GPUs per pod (end to end)")
    parser.add_argument("--e2e-pods", type=int, default=5)
    parser.add_argument("--run-seconds", type=float, default=5)
    parser.add_argument("--profile", default=str(Path(__file__).parent / "profiles" /
                                                 "bench-100.yaml"))
    args = parser.parse_args()
    lines = events(args.workloads, args.pods)
    pod_events = sum(1 for line in lines if not line.startswith('{"type": "WORKLOAD"'))
    rates, transitions = [], 0
    for _ in range(args.repeat):
        gc.collect()
        start = time.perf_counter()
        transitions = sum(1 for _ in replay(lines))
        rates.append(pod_events / (time.perf_counter() - start))
    median = statistics.median(rates)
    print(f"fold: {args.workloads} workloads x {args.pods} pods, {pod_events} pod events, "
          f"{transitions} transitions per run, {args.repeat} runs")
    print(f"pod events/s   median {median:,.0f}   min {min(rates):,.0f}   max {max(rates):,.0f}")
    print(f"target         >= {TARGET:,} events/s   ratio {median / TARGET:.2f}x "
          f"({'met' if median >= TARGET else 'MISSED'})")
    print("(includes JSON decoding of each line, as replay does; the service folds decoded "
          "watch events)")
    if args.fold_only:
        return
    runs: dict[str, list[float]] = {"Running": [], "Completed": []}
    for run in range(args.e2e_runs):
        print(f"\nend to end, run {run + 1} of {args.e2e_runs}:", flush=True)
        for phase, p99 in e2e(args.e2e_workloads, args.e2e_pods, args.run_seconds,
                              args.profile, args.gpu).items():
            runs[phase].append(p99)
    print(f"\nend to end, {args.e2e_workloads * args.e2e_pods:,} pods, {args.e2e_runs} runs: "
          "p99 from the pod change to the phase event on NATS")
    for phase, values in runs.items():
        if not values:
            continue
        median = statistics.median(values)
        print(f"  -> {phase:9s} p99 per run {', '.join(f'{v:.0f}' for v in values)} ms;  "
              f"median {median:.0f} ms  target <= 500 ms  ratio {median / 500:.2f} "
              f"({'met' if median <= 500 else 'MISSED'})")



# --- end to end: a pod's status change in kubesim → the phase event on NATS ------------------

def stack_cpu() -> dict[str, float]:
    """CPU seconds so far of this process and everything it started (the embedded stack), by
    program: on a small machine they all share the cores, so this says who took them."""
    import os
    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu, names = {}, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
        words = [a.decode(errors="replace") for a in argv if a]
        module = next((w for w in words if w.startswith("fairway_")), None)
        program = Path(words[0].split(":")[0]).name if words else "?"  # postgres: ... -> postgres
        names[pid] = module.removeprefix("fairway_") if module else program
    me = os.getpid()

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid == me:
                return True
            pid = parents.get(pid, 0)
        return False

    out: dict[str, float] = {}
    for pid, seconds in cpu.items():
        if ours(pid):
            name = "bench" if pid == me else names[pid]
            out[name] = out.get(name, 0.0) + seconds
    return out


def e2e(workloads: int, pods: int, run_seconds: float, profile: str, gpu: int
        ) -> dict[str, float]:
    """Publish `workloads` trainings of `pods` pods each (as submission would), watch the pods
    in kubesim ourselves and the phase events on NATS, and report the delay from the pod
    change that decides a phase (the last pod Ready → Running, the last pod Succeeded →
    Completed) to that phase's event."""
    import asyncio
    import contextlib
    import os
    import tempfile
    import threading
    import uuid
    from datetime import datetime

    import nats
    from kubernetes import client, config

    from fairway_bus import publish_model
    from fairway_contracts import EffectiveSpec, WorkloadType, subjects
    from fairway_contracts.events import WorkloadSubmitted
    from fairway_contracts.workloads import utcnow
    from fairway_devstack.testing import running_stack
    from fairway_kubesim.kubelet import STATUS_LOG_ENV

    ready_at: dict[str, dict[str, float]] = {}
    done_at: dict[str, dict[str, float]] = {}
    phase_at: dict[tuple[str, str], float] = {}
    folded_at: dict[tuple[str, str], float] = {}  # the event's `time`: when lifecycle folded it
    msg_ids: dict[str, tuple[str, str]] = {}
    outbox_at: dict[tuple[str, str], float] = {}  # when its recording transaction began
    wall = time.time() - time.monotonic()  # to compare the event's wall-clock time
    failures: list[str] = []
    p99s: dict[str, float] = {}  # phase -> p99 in ms, what this run returns

    watcher_busy = [0.0, 0.0]  # seconds spent parsing events, longest single chunk
    pod_wid: dict[str, str] = {}  # pod name -> workload, from the watch

    def follow_pods(kubeconfig: str, stop: threading.Event) -> None:
        # The time of a pod's status change is when this watcher reads it from kubesim: raw
        # JSON lines, no client models (deserialising a V1Pod costs more than lifecycle's
        # whole handling of the event, and a watcher that lags would date changes late and
        # flatter the latency). Its busy time is printed to show it kept up.
        api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        response = api.list_pod_for_all_namespaces(
            watch=True, label_selector="fairway.io/workload-id", timeout_seconds=3600,
            _request_timeout=3600, _preload_content=False)
        tail = b""
        for chunk in response.stream(amt=None, decode_content=False):
            now = time.monotonic()
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                if not line:
                    continue
                pod = json.loads(line)["object"]
                meta = pod["metadata"]
                wid = (meta.get("labels") or {}).get("fairway.io/workload-id")
                if wid is None:
                    continue
                pod_wid[meta["name"]] = wid
                status = pod.get("status") or {}
                if any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in status.get("conditions") or []):
                    ready_at.setdefault(wid, {}).setdefault(meta["name"], now)
                if status.get("phase") == "Succeeded":
                    done_at.setdefault(wid, {}).setdefault(meta["name"], now)
            spent = time.monotonic() - now
            watcher_busy[0] += spent
            watcher_busy[1] = max(watcher_busy[1], spent)
            if stop.is_set():
                response.release_conn()
                return

    def load_written() -> dict[str, dict[str, dict[str, float]]]:
        """When kubesim's kubelets wrote each status (its status log): the reference. A
        watcher's read is later by however long kubesim took to deliver the event."""
        written: dict[str, dict[str, dict[str, float]]] = {"Running": {}, "Completed": {}}
        with contextlib.suppress(FileNotFoundError), open(status_log) as log:
            for line in log:
                at, key, pod_phase, ready = line.split()
                name = key.split("/", 1)[1]
                if (wid := pod_wid.get(name)) is None:
                    continue
                if ready == "True":
                    written["Running"].setdefault(wid, {}).setdefault(name, float(at))
                if pod_phase == "Succeeded":
                    written["Completed"].setdefault(wid, {}).setdefault(name, float(at))
        return written

    async def drive(stack) -> None:
        nc = await nats.connect(stack.nats_url)
        js = nc.jetstream()

        async def on_phase(msg) -> None:
            event = json.loads(msg.data)
            key = (event["workloadId"], event["phase"])
            if key not in phase_at:
                phase_at[key] = time.monotonic()
                msg_ids[f"phase:{event['workloadId']}:{event['sequence']}"] = key
                folded_at[key] = datetime.fromisoformat(event["time"]).timestamp() - wall
            if event["phase"] == "Failed" and not failures:
                failures.append(event["message"])
                print("a workload failed:", event["message"], flush=True)

        await js.subscribe("fairway.phase.>", stream="FAIRWAY_PHASES", ordered_consumer=True,
                           cb=on_phase)
        # The relay deletes a row once published: a trigger keeps, for this run, when each
        # phase row's recording transaction began (PostgreSQL's now()).
        import asyncpg
        db = await asyncpg.connect(stack.database_url)
        await db.execute("""
            CREATE TABLE IF NOT EXISTS lifecycle.bench_outbox_seen (msg_id text, created_at
                timestamptz);
            CREATE OR REPLACE FUNCTION lifecycle.bench_outbox_seen() RETURNS trigger
                LANGUAGE plpgsql AS $$ BEGIN
                    INSERT INTO lifecycle.bench_outbox_seen VALUES (NEW.msg_id, NEW.created_at);
                    RETURN NULL; END $$;
            CREATE OR REPLACE TRIGGER bench_outbox_seen AFTER INSERT ON lifecycle.outbox
                FOR EACH ROW WHEN (NEW.msg_id LIKE 'phase:%')
                EXECUTE FUNCTION lifecycle.bench_outbox_seen();""")
        spec = EffectiveSpec.model_validate({
            "image": "busybox", "priorityClass": "train", "preemptible": True,
            "backoffLimit": 0, "pods": pods, "minPods": pods, "parallelism": pods,
            "compute": {"gpuDevicesRequest": gpu},
            "annotations": [{"name": "sim.fairway.io/run-seconds", "value": str(run_seconds)}]})
        ids = []
        cpu_before = stack_cpu()
        started = time.monotonic()
        for i in range(workloads):
            wid = str(uuid.uuid4())
            ids.append(wid)
            event = WorkloadSubmitted(event_id=wid, workload_id=wid, name=f"lat-{i}",
                                      project="bench", project_id="0",
                                      workload_type=WorkloadType.TRAINING,
                                      created_at=utcnow(), created_by="bench", spec=spec)
            await publish_model(js, subjects.workload_submitted("bench", wid), event,
                                msg_id=f"submitted:{wid}")
        print(f"published {workloads} trainings x {pods} pods in "
              f"{time.monotonic() - started:.1f}s", flush=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = sum(1 for w in ids if (w, "Completed") in phase_at or (w, "Failed") in
                       phase_at)
            if done == len(ids):
                break
            await asyncio.sleep(1)
        await nc.close()
        total = time.monotonic() - started
        cpu_used = {name: seconds - cpu_before.get(name, 0.0)
                    for name, seconds in stack_cpu().items()}
        # When each phase row's recording transaction began: the path from the fold to NATS,
        # split in two.
        for r in await db.fetch("SELECT msg_id, extract(epoch FROM created_at) AS c"
                                " FROM lifecycle.bench_outbox_seen"):
            if r["msg_id"] in msg_ids:
                outbox_at[msg_ids[r["msg_id"]]] = float(r["c"]) - wall
        await db.execute("DROP TRIGGER bench_outbox_seen ON lifecycle.outbox")
        await db.close()

        written = load_written()

        def changed(phase: str, w: str, source: dict[str, dict[str, float]]) -> float | None:
            """When the last of the workload's pods made the change that decides `phase`."""
            times = source.get(w, {})
            return max(times.values()) if len(times) >= pods else None

        def delays(phase: str, source: dict[str, dict[str, float]]) -> list[float]:
            # Not clamped at 0: a negative delay would mean the reference is late.
            return [phase_at[(w, phase)] - at for w in ids if (w, phase) in phase_at
                    and (at := changed(phase, w, source)) is not None]

        def pct(values: list[float], p: float) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000

        def split(phase: str, watched: dict[str, dict[str, float]]) -> str:
            """Where the time went: kubesim wrote the change → the bench's watcher read it;
            written → lifecycle folded it → its recording transaction began → the relay had
            it on NATS."""
            steps: dict[str, list[float]] = {"kubesim wrote -> a watcher read": [],
                                             "wrote -> folded": [], "-> recording began": [],
                                             "-> committed and relayed, on NATS": []}
            for w in ids:
                key = (w, phase)
                at = changed(phase, w, written[phase])
                read = changed(phase, w, watched)
                if key in phase_at and key in outbox_at and at is not None and read is not None:
                    steps["kubesim wrote -> a watcher read"].append(read - at)
                    times = [at, folded_at[key], outbox_at[key], phase_at[key]]
                    for name, (a, b) in zip(list(steps)[1:], itertools.pairwise(times),
                                            strict=True):
                        steps[name].append(b - a)
            return "  where it went (ms, p50 / p99): " + "; ".join(
                f"{name} {pct(values, .5):.0f} / {pct(values, .99):.0f}"
                for name, values in steps.items() if values)

        watched = {"Running": ready_at, "Completed": done_at}
        reference = {phase: written[phase] if written[phase] else watched[phase]
                     for phase in watched}
        if not written["Running"]:
            print("kubesim wrote no status log: latencies are from the bench watcher's reads")
        seen: dict[str, int] = {}
        for (w, phase) in phase_at:
            if w in set(ids):
                seen[phase] = seen.get(phase, 0) + 1
        print("phase events seen:", dict(sorted(seen.items())),
              "workloads with all pods ready seen:", sum(
                  1 for w in ids if len(ready_at.get(w, {})) >= pods))
        print(f"{workloads * pods} pods through Running and Succeeded in {total:.1f}s")
        print(f"CPU seconds during the run ({os.cpu_count()} cores, {total:.1f}s): " + ", ".join(
            f"{name} {seconds:.1f}" for name, seconds in
            sorted(cpu_used.items(), key=lambda kv: -kv[1]) if seconds >= 0.05)
            + f"; total {sum(cpu_used.values()):.1f}")
        print(f"bench pod watcher busy {watcher_busy[0]:.1f}s of {total:.1f}s, longest chunk "
              f"{watcher_busy[1] * 1000:.0f} ms")
        for label, phase in (("last pod Ready -> Running event", "Running"),
                             ("last pod Succeeded -> Completed event", "Completed")):
            values = delays(phase, reference[phase])
            if not values:
                continue
            p50, p99 = pct(values, .5), pct(values, .99)
            p99s[phase] = p99
            print(f"{label:38s} n={len(values)}  p50 {p50:.0f} ms  p99 {p99:.0f} ms  max "
                  f"{max(values) * 1000:.0f} ms  (target p99 <= 500 ms: "
                  f"{'met' if p99 <= 500 else 'MISSED'}, ratio {p99 / 500:.2f})")
            print(split(phase, watched[phase]))
            if min(values) < 0:
                print(f"  {sum(1 for v in values if v < 0)} negative (min "
                      f"{min(values) * 1000:.0f} ms): the reference time is wrong")

    with tempfile.TemporaryDirectory(prefix="fairway-bench") as tmp:
        print("starting the embedded stack …", flush=True)
        status_log = Path(tmp) / "kubesim-status.log"
        with running_stack(Path(tmp), env={"FAIRWAY_LOG_LEVEL": "WARNING",
                                           STATUS_LOG_ENV: str(status_log)},
                           kubesim_profile=profile) as stack:
            stop = threading.Event()
            follower = threading.Thread(target=follow_pods, args=(stack.kubeconfig, stop),
                                        daemon=True)
            follower.start()
            time.sleep(1)
            asyncio.run(drive(stack))
            stop.set()
    return p99s


if __name__ == "__main__":
    main()
