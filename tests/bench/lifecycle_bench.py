"""`make bench-lifecycle`: the phase fold alone, events per second in one process.

Replays recorded-looking pod watch events (the replay examples' stages, for many workloads)
through the same engine as `fairway lifecycle replay` and the service.

    make bench-lifecycle                         # the fold: 4,000 workloads, 40,000 events
    make bench-lifecycle BENCH_ARGS="--e2e"      # and 150 x 5 one-GPU pods end to end
"""

import argparse
import gc
import json
import statistics
import time
from pathlib import Path

from fairway_lifecycle.replay import replay
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
    parser.add_argument("--e2e", action="store_true",
                        help="also run the end-to-end latency part on the embedded stack")
    parser.add_argument("--e2e-workloads", type=int, default=150)
    parser.add_argument("--gpu", type=int, default=1, help="GPUs per pod (end to end)")
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
    if args.e2e:
        e2e(args.e2e_workloads, args.e2e_pods, args.run_seconds, args.profile, args.gpu)



# --- end to end: a pod's status change in kubesim → the phase event on NATS ------------------

def e2e(workloads: int, pods: int, run_seconds: float, profile: str, gpu: int) -> None:
    """Publish `workloads` trainings of `pods` pods each (as submission would), watch the pods
    in kubesim ourselves and the phase events on NATS, and report the delay from the pod
    change that decides a phase (the last pod Ready → Running, the last pod Succeeded →
    Completed) to that phase's event."""
    import asyncio
    import tempfile
    import threading
    import uuid

    import nats
    from kubernetes import client, config, watch

    from fairway_bus import publish_model
    from fairway_contracts import EffectiveSpec, WorkloadType, subjects
    from fairway_contracts.events import WorkloadSubmitted
    from fairway_contracts.workloads import utcnow
    from fairway_devstack.testing import running_stack

    ready_at: dict[str, dict[str, float]] = {}
    done_at: dict[str, dict[str, float]] = {}
    phase_at: dict[tuple[str, str], float] = {}
    failures: list[str] = []

    def follow_pods(kubeconfig: str, stop: threading.Event) -> None:
        api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        w = watch.Watch()
        for event in w.stream(api.list_pod_for_all_namespaces,
                              label_selector="fairway.io/workload-id", timeout_seconds=3600,
                              _request_timeout=3600):
            now = time.monotonic()
            pod = event["raw_object"]
            wid = pod["metadata"]["labels"]["fairway.io/workload-id"]
            name = pod["metadata"]["name"]
            status = pod.get("status") or {}
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in status.get("conditions") or []):
                ready_at.setdefault(wid, {}).setdefault(name, now)
            if status.get("phase") == "Succeeded":
                done_at.setdefault(wid, {}).setdefault(name, now)
            if stop.is_set():
                w.stop()

    async def drive(stack) -> None:
        nc = await nats.connect(stack.nats_url)
        js = nc.jetstream()

        async def on_phase(msg) -> None:
            event = json.loads(msg.data)
            phase_at.setdefault((event["workloadId"], event["phase"]), time.monotonic())
            if event["phase"] == "Failed" and not failures:
                failures.append(event["message"])
                print("a workload failed:", event["message"], flush=True)

        await js.subscribe("fairway.phase.>", stream="FAIRWAY_PHASES", ordered_consumer=True,
                           cb=on_phase)
        spec = EffectiveSpec.model_validate({
            "image": "busybox", "priorityClass": "train", "preemptible": True,
            "backoffLimit": 0, "pods": pods, "minPods": pods, "parallelism": pods,
            "compute": {"gpuDevicesRequest": gpu},
            "annotations": [{"name": "sim.fairway.io/run-seconds", "value": str(run_seconds)}]})
        ids = []
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

        def delays(phase: str, source: dict[str, dict[str, float]]) -> list[float]:
            out = []
            for w in ids:
                if (w, phase) in phase_at and len(source.get(w, {})) >= pods:
                    out.append(max(0.0, phase_at[(w, phase)] - max(source[w].values())))
            return out

        running, completed = delays("Running", ready_at), delays("Completed", done_at)
        seen: dict[str, int] = {}
        for (w, phase) in phase_at:
            if w in set(ids):
                seen[phase] = seen.get(phase, 0) + 1
        print("phase events seen:", dict(sorted(seen.items())),
              "workloads with all pods ready seen:", sum(
                  1 for w in ids if len(ready_at.get(w, {})) >= pods))
        print(f"{workloads * pods} pods through Running and Succeeded in {total:.1f}s")
        for label, values in (("last pod Ready -> Running event", running),
                              ("last pod Succeeded -> Completed event", completed)):
            if values:
                ordered = sorted(values)
                p50 = ordered[len(ordered) // 2]
                p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
                print(f"{label:40s} n={len(values)}  p50 {p50 * 1000:.0f} ms  "
                      f"p99 {p99 * 1000:.0f} ms  (target p99 <= 500 ms: "
                      f"{'met' if p99 <= 0.5 else 'MISSED'}, ratio {p99 / 0.5:.2f})")

    with tempfile.TemporaryDirectory(prefix="fairway-bench") as tmp:
        print("starting the embedded stack …", flush=True)
        with running_stack(Path(tmp), env={"FAIRWAY_LOG_LEVEL": "WARNING"},
                           kubesim_profile=profile) as stack:
            stop = threading.Event()
            follower = threading.Thread(target=follow_pods, args=(stack.kubeconfig, stop),
                                        daemon=True)
            follower.start()
            time.sleep(1)
            asyncio.run(drive(stack))
            stop.set()


if __name__ == "__main__":
    main()
