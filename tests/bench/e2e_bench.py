"""`make bench`: trainings through the API on the embedded stack, end to end, and where the
time goes.

One stack, four measurements:
  1. the I/O floor: a bare pipeline doing only database commits and JetStream publishes per
     workload (1 and 10 by default), at the same concurrency, on the same servers;
  2. throughput: N trainings (0 GPUs unless --gpu / --fraction-mix say otherwise, 1 s of
     simulated run) submitted at a concurrency,
     followed on NATS to Completed: workloads/s, submit -> Running / Completed percentiles, the
     CPU each process spent per workload (five services, NATS, PostgreSQL, kubesim, the
     client), the transactions and messages per workload, and the ratio to the I/O floor;
  3. latency at an offered load: trainings submitted at a fixed rate, submit -> Running p99;
  4. the API alone: scheduler and lifecycle stopped, POST /api/v1/workloads/trainings at the
     same concurrency: requests/s, latency percentiles, CPU per request.
The end compares each figure with issue 22's target.

    make bench                                        # 5,000 at concurrency 32; 50/s for 20 s
                                                      # (on 20 nodes: room for 2,200 pods)
    make bench BENCH_ARGS="--nodes 0"                 # on kubesim's small built-in cluster
    make bench BENCH_ARGS="--count 500 --skip-api"    # a quick look
    make bench BENCH_ARGS="--profile"                 # py-spy on each service during (2)
                                                      # and (3): flame graphs, top functions
    make bench BENCH_ARGS="--gpu 1 --nodes 200"       # whole GPUs on 1,600 of them
    make bench BENCH_ARGS="--gpu 1 --fraction-mix --nodes 200"   # half of them fractions
    make bench BENCH_ARGS="--against main --skip-floor --rate 0"  # this tree and main at
                                                      # once: a change's CPU within 1-2 %
Starts its own stack in a temporary directory unless FAIRWAY_API_URL points at a running one
(then FAIRWAY_TOKEN and NATS_URL must be set too, and only (2) and (3) run, without CPU figures).
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import nats

from fairway_bus.settings import nats_servers
from fairway_contracts import streams
from fairway_devstack.stack import parse_replicas
from tests.bench import _statements
from tests.bench._accounting import Cost, cost, snapshot
from tests.bench._floor import io_floor
from tests.bench._http import Connection
from tests.bench._profile import Profiler

SERVICES = ("submission", "policy", "scheduler", "lifecycle", "metrics")

SIMULATED_SECONDS = 3  # kubesim: pull 1 + start 1 + run 1 (the annotation below)
TO_RUNNING_SIMULATED = 2
BEHIND_SHOWN = 50  # a consumer this many messages behind is named in the progress lines


def compute_of(args: argparse.Namespace, sequence: int) -> dict[str, object]:
    """The compute of the `sequence`-th training: `--gpu` whole GPUs (or that portion of one
    when below 1); with `--fraction-mix`, every other one asks for 0.25 or 0.5 of a GPU."""
    if args.fraction_mix and sequence % 2:
        return {"gpuPortionRequest": 0.25 if sequence % 4 == 1 else 0.5}
    if 0 < args.gpu < 1:
        return {"gpuPortionRequest": args.gpu}
    return {"gpuDevicesRequest": int(args.gpu)}


def gpus_of(args: argparse.Namespace) -> str:
    whole = f"{args.gpu:g} GPU" + ("" if args.gpu == 1 else "s")
    return f"half {whole}, half 0.25/0.5 GPU" if args.fraction_mix else whole


def gpu_profile(nodes: int) -> str:
    """A kubesim profile of `nodes` nodes with 8 A100 80GB GPUs each, all in the default pool."""
    return (f"cluster:\n  nodes:\n    - name: gpu-{{1..{nodes}}}\n"
            "      labels: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}\n"
            "      gpus: 8\n      gpuMemoryMiB: 81920\n      cpuMillis: 128000\n"
            "      memoryMiB: 1048576\n      ready: true\n")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class Stack:
    """Where the stack is, and what the benchmark may do to it."""
    api_url: str
    token: str
    nats_url: str
    database_url: str | None = None
    nats_monitor_url: str | None = None
    pids: dict[str, int] = field(default_factory=dict)
    more_api_urls: tuple[str, ...] = ()  # the other API processes of a replicated stack
    stop_service: object = None  # callable(name) on an embedded stack
    postgres_log: Path | None = None  # the embedded server's log (--statements reads it)
    lifecycle_urls: tuple[str, ...] = ()  # their /metrics count the Kubernetes API calls
    service_urls: tuple[str, ...] = ()  # every service's: their /metrics count the fetches


@dataclass
class Phases:
    """Phase events seen on NATS, by workload id: first Running, first terminal."""
    running: dict[str, float] = field(default_factory=dict)
    finished: dict[str, tuple[float, str]] = field(default_factory=dict)

    async def on_event(self, msg) -> None:
        event = json.loads(msg.data)
        wid, phase = event["workloadId"], event["phase"]
        now = time.monotonic()
        if phase == "Running":
            self.running.setdefault(wid, now)
        elif phase in ("Completed", "Failed"):
            self.finished.setdefault(wid, (now, phase))


@dataclass
class Reasons:
    """Pending reasons the scheduler published, by code ("-" for "no longer pending"): each is
    read by three services, so they are a cost of their own."""
    codes: Counter[str] = field(default_factory=Counter)
    said: dict[str, str] = field(default_factory=dict)  # the last sentence of each code

    async def on_event(self, msg) -> None:
        event = json.loads(msg.data)
        code = (event.get("code") or "?") if event.get("pending") else "-"
        self.codes[code] += 1
        if event.get("message"):
            self.said[code] = event["message"]

    def report(self, before: Counter[str], units: int) -> list[str]:
        """The reasons published since `before`, per unit, and the last sentence of each."""
        spent = self.codes - before
        per_unit = "   ".join(f"{code} {n / max(1, units):.2f}"
                               for code, n in spent.most_common()) or "none"
        return [f"pending reasons per workload  {per_unit}",
                *(f"  the last {code}: {self.said[code]}" for code in spent
                  if code in self.said)]


class Bench:
    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.phases = Phases()
        self.reasons = Reasons()
        self.results: dict[str, float] = {}
        self.run_tag = f"b{int(time.time()) % 100000}"
        self.sequence = 0

    async def main(self) -> int:
        args, stack = self.args, self.stack
        self.nc = await nats.connect(nats_servers(stack.nats_url))
        self.pg = await asyncpg.connect(stack.database_url) if stack.database_url else None
        sub = await self.nc.jetstream(timeout=30).subscribe(  # a cluster may take a while
            "fairway.phase.>", stream="FAIRWAY_PHASES", ordered_consumer=True,
            deliver_policy=nats.js.api.DeliverPolicy.NEW, cb=self.phases.on_event)
        reasons = await self.nc.jetstream(timeout=30).subscribe(
            "fairway.scheduler.pending.>", stream="FAIRWAY_DECISIONS", ordered_consumer=True,
            deliver_policy=nats.js.api.DeliverPolicy.NEW, cb=self.reasons.on_event)
        headers = {"Authorization": f"Bearer {stack.token}"}
        try:
            async with httpx.AsyncClient(base_url=stack.api_url, headers=headers,
                                         timeout=60) as self.http:
                # Submissions go through cheap keep-alive connections (see _http.py), at most
                # this many at once: the closed loops use one each, the offered load a free one.
                self.connections: asyncio.Queue[Connection] = asyncio.Queue()
                apis = (stack.api_url, *stack.more_api_urls)  # replicas take turns
                for i in range(max(args.concurrency, 64)):
                    self.connections.put_nowait(Connection(apis[i % len(apis)], headers))
                self.project_id = next(
                    p["id"] for p in (await self.http.get("/api/v1/org-unit/projects")).json()[
                        "projects"] if p["name"] == "default")
                # Workloads over several projects (lifecycle shards by project): they take
                # turns; one project puts every workload in one shard.
                self.project_ids = [self.project_id]
                for i in range(1, args.projects):
                    r = await self.http.post("/api/v1/org-unit/projects",
                                             json={"name": f"bench-{self.run_tag}-{i}"})
                    r.raise_for_status()
                    self.project_ids.append(r.json()["id"])
                if stack.database_url and not args.skip_floor:
                    await self.floor()
                code = await self.throughput()
                if args.rate > 0:
                    await self.offered_load()
                if stack.stop_service is not None and not args.skip_api:
                    await self.api_alone()
            while not self.connections.empty():
                await self.connections.get_nowait().close()
        finally:
            await sub.unsubscribe()
            await reasons.unsubscribe()
            await self.nc.close()
            if self.pg is not None:
                await self.pg.close()
        self.summary()
        return code

    # -- measurements --------------------------------------------------------------------------

    async def floor(self) -> None:
        count = min(self.args.count, 2000)
        print(f"I/O floor: {count} x ({self.args.floor_commits} commits + "
              f"{self.args.floor_publishes} JetStream publishes) at concurrency "
              f"{self.args.concurrency} ...", flush=True)
        rate = await io_floor(self.stack.nats_url, self.stack.database_url, count,
                              self.args.concurrency, self.args.floor_commits,
                              self.args.floor_publishes)
        self.results["floor"] = rate
        print(f"I/O floor            {rate:.0f} workloads/s\n", flush=True)

    async def throughput(self) -> int:
        args = self.args
        print(f"throughput: {args.count} trainings at concurrency {args.concurrency} ...",
              flush=True)
        before = await self.snapshot()
        reasons_before = Counter(self.reasons.codes)
        profiler = self.profiler_start("throughput")
        statements = await self.statements_begin()
        started = time.monotonic()
        submitted, latencies, errors = await self.submit_closed(args.count, args.concurrency)
        submit_seconds = time.monotonic() - started
        print(f"  submitted {len(submitted)} in {submit_seconds:.1f} s "
              f"({len(submitted) / submit_seconds:.0f}/s), {len(errors)} errors", flush=True)
        for e in errors[:5]:
            print("   ", e)
        await self.wait_finished(submitted, started)
        wall = time.monotonic() - started
        spent = await self.cost_since(before, len(submitted))
        statement_lines = await self.statements_end(statements, len(submitted))
        if profiler is not None:
            for line in profiler.stop():
                print("  profile", line)
        to_running = [self.phases.running[w] - t for w, t in submitted.items()
                      if w in self.phases.running]
        done = [w for w in submitted if w in self.phases.finished]
        completed = [w for w in done if self.phases.finished[w][1] == "Completed"]
        to_done = [self.phases.finished[w][0] - submitted[w] for w in completed]
        self.results.update(throughput=len(completed) / wall, submit_rate=len(submitted) /
                            submit_seconds)
        print()
        print(f"trainings            {args.count} ({gpus_of(args)}, run 1 s), concurrency "
              f"{args.concurrency}")
        print(f"completed            {len(completed)}   failed {len(done) - len(completed)}   "
              f"unfinished {len(submitted) - len(done)}")
        print(f"wall time            {wall:.1f} s")
        print(f"throughput           {self.results['throughput']:.1f} workloads/s "
              f"(completed / wall time)")
        print(f"submit (POST)        p50 {pct(latencies, 50) * 1000:.0f} ms   "
              f"p99 {pct(latencies, 99) * 1000:.0f} ms")
        print(f"submit -> Running    p50 {pct(to_running, 50):.2f} s   "
              f"p99 {pct(to_running, 99):.2f} s")
        print(f"submit -> Completed  p50 {pct(to_done, 50):.2f} s   p99 {pct(to_done, 99):.2f} s"
              f"   ({SIMULATED_SECONDS} s of it simulated pull, start and run)")
        if spent is not None:
            self.results["cpu_ms"] = spent.per_unit_ms(spent.fairway_cpu)
            self.results["cpu_shares"] = spent
            for line in spent.report("workload"):
                print(line)
        for line in self.reasons.report(reasons_before, len(submitted)):
            print(line)
        for line in statement_lines:
            print(line)
        if "floor" in self.results:
            self.results["ratio"] = self.results["throughput"] / self.results["floor"]
            print(f"ratio to I/O floor   {self.results['ratio']:.3f} "
                  f"({self.results['throughput']:.1f} / {self.results['floor']:.0f})")
        print(flush=True)
        return 0 if len(completed) == args.count else 1

    def profiler_start(self, run: str) -> Profiler | None:
        """With --profile: py-spy on each service, writing under <profile dir>/<run>."""
        if not (self.args.profile and self.stack.pids):
            return None
        profiler = Profiler(self.args.profile_dir / run,
                            {n: p for n, p in self.stack.pids.items()
                             if n != "postgres" and not n.startswith("nats")})
        profiler.start()
        return profiler

    async def statements_begin(self) -> tuple[int, dict] | None:
        """With --statements: the statement log on, and where it and the table writes stood."""
        if not (self.args.statements and self.pg is not None
                and self.stack.postgres_log is not None):
            return None
        offset = self.stack.postgres_log.stat().st_size
        await _statements.start(self.pg)
        return offset, await _statements.table_writes(self.pg)

    async def statements_end(self, begun: tuple[int, dict] | None, units: int) -> list[str]:
        """The statement log off again, and what it and the table writes say per unit."""
        if begun is None:
            return []
        offset, writes_before = begun
        await _statements.stop(self.pg)
        await asyncio.sleep(1)  # the statistics of the last writes reach the views
        writes_after = await _statements.table_writes(self.pg)
        return [*_statements.summarise(self.stack.postgres_log, offset, units),
                *_statements.writes_report(writes_before, writes_after, units)]

    async def offered_load(self) -> None:
        args = self.args
        count = int(args.rate * args.rate_seconds)
        print(f"offered load: {count} trainings at {args.rate:g}/s ...", flush=True)
        before = await self.snapshot()
        reasons_before = Counter(self.reasons.codes)
        statements = await self.statements_begin()
        profiler = self.profiler_start("offered-load")
        started = time.monotonic()
        submitted: dict[str, float] = {}
        errors: list[str] = []

        async def one(i: int) -> None:
            wid, _, error = await self.submit_one()
            if error:
                errors.append(error)
            else:
                submitted[wid] = t0 + i / args.rate  # from when it was due: no coordinated omission

        tasks = []
        t0 = time.monotonic()
        for i in range(count):
            delay = t0 + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        await self.wait_finished(submitted, started)
        spent = await self.cost_since(before, len(submitted))
        statement_lines = await self.statements_end(statements, len(submitted))
        if profiler is not None:
            for line in profiler.stop():
                print("  profile", line)
        to_running = [self.phases.running[w] - t for w, t in submitted.items()
                      if w in self.phases.running]
        self.results["p99_running"] = pct(to_running, 99)
        print(f"offered load         {args.rate:g} workloads/s for {args.rate_seconds:g} s, "
              f"{len(errors)} errors")
        print(f"submit -> Running    p50 {pct(to_running, 50):.2f} s   "
              f"p99 {pct(to_running, 99):.2f} s   max {max(to_running, default=float('nan')):.2f} s"
              f"   ({TO_RUNNING_SIMULATED} s of it simulated pull and start)")
        if spent is not None:  # what a workload costs when batches do not fill
            for line in spent.report("workload"):
                print(line)
        for line in self.reasons.report(reasons_before, len(submitted)):
            print(line)
        for line in statement_lines:
            print(line)
        print(flush=True)

    async def api_alone(self) -> None:
        args = self.args
        for name in self.stack.pids:  # every process of them, on a replicated stack too
            if name.split("-")[0] in ("scheduler", "lifecycle"):
                self.stack.stop_service(name)
        print(f"the API alone (scheduler and lifecycle stopped): {args.api_count} POSTs at "
              f"concurrency {args.concurrency} ...", flush=True)
        before = await self.snapshot()
        started = time.monotonic()
        submitted, latencies, errors = await self.submit_closed(args.api_count, args.concurrency)
        wall = time.monotonic() - started
        spent = await self.cost_since(before, len(submitted))
        self.results.update(api_rate=len(submitted) / wall, api_p99=pct(latencies, 99))
        print(f"POST trainings       {len(submitted) / wall:.0f} requests/s   "
              f"p50 {pct(latencies, 50) * 1000:.0f} ms   p99 {pct(latencies, 99) * 1000:.0f} ms"
              f"   {len(errors)} errors")
        if spent is not None:
            for line in spent.report("request"):
                print(line)
        print(flush=True)

    # -- helpers ---------------------------------------------------------------------------------

    async def submit_one(self) -> tuple[str, float, str | None]:
        self.sequence += 1
        project_id = self.project_ids[self.sequence % len(self.project_ids)]
        body = {"name": f"{self.run_tag}-{self.sequence}", "projectId": project_id,
                "spec": {"image": "busybox", "compute": compute_of(self.args, self.sequence),
                         "annotations": [{"name": "sim.fairway.io/run-seconds", "value": "1"}]}}
        connection = await self.connections.get()
        try:
            t0 = time.monotonic()
            status, text = await connection.post_json("/api/v1/workloads/trainings", body)
        finally:
            self.connections.put_nowait(connection)
        if status != 202:
            return "", t0, f"{status} {text[:200].decode(errors='replace')}"
        return json.loads(text)["workloadId"], t0, None

    async def submit_closed(self, count: int, concurrency: int
                            ) -> tuple[dict[str, float], list[float], list[str]]:
        submitted: dict[str, float] = {}
        latencies: list[float] = []
        errors: list[str] = []
        remaining = iter(range(count))

        async def submitter() -> None:
            for _ in remaining:
                wid, t0, error = await self.submit_one()
                latencies.append(time.monotonic() - t0)
                if error:
                    errors.append(error)
                else:
                    submitted[wid] = t0

        await asyncio.gather(*(submitter() for _ in range(concurrency)))
        return submitted, latencies, errors

    async def wait_finished(self, submitted: dict[str, float], started: float) -> None:
        deadline = time.monotonic() + self.args.timeout
        last, last_print = -1, 0.0
        while time.monotonic() < deadline:
            done = sum(1 for w in submitted if w in self.phases.finished)
            if done == len(submitted):
                break
            if done != last and time.monotonic() - last_print >= 2:
                running = sum(1 for w in submitted if w in self.phases.running)
                print(f"  {time.monotonic() - started:5.0f} s  {done}/{len(submitted)} finished,"
                      f" {running} reached Running{await self.behind()}", flush=True)
                last, last_print = done, time.monotonic()
            await asyncio.sleep(0.2)

    async def behind(self) -> str:
        """The consumers furthest behind (messages not yet delivered or not yet acknowledged),
        where work queues up: under a burst, the stage that keeps the rest waiting."""
        backlog: dict[str, int] = {}
        try:
            for stream in streams.STREAMS:
                for info in await self.nc.jsm().consumers_info(stream.name):
                    backlog[info.name] = (info.num_pending or 0) + (info.num_ack_pending or 0)
        except Exception as exc:  # a progress line only: never the run's failure
            return f"; consumers not read ({exc!r})"
        top = [(n, name) for name, n in backlog.items() if n >= BEHIND_SHOWN]
        return ("; behind: " + ", ".join(f"{name} {n}" for n, name in sorted(top, reverse=True)[:3])
                if top else "")

    async def snapshot(self):
        if not self.stack.pids:
            return None
        return await snapshot(self.stack.pids, self.stack.nats_monitor_url, self.pg,
                              self.stack.lifecycle_urls, self.stack.service_urls)

    async def cost_since(self, before, units: int) -> Cost | None:
        if before is None:
            return None
        return cost(before, await self.snapshot(), units)

    def summary(self) -> None:
        r = self.results
        rows = [("throughput (workloads/s)", r.get("throughput"), ">= 100 (stretch 250)",
                 lambda v: v >= 100),
                ("Fairway CPU (ms per workload)", r.get("cpu_ms"), "<= 10", lambda v: v <= 10),
                ("submit -> Running p99 at offered load (s)", r.get("p99_running"),
                 "<= 2.5", lambda v: v <= 2.5),
                ("POST trainings alone (requests/s)", r.get("api_rate"), ">= 500",
                 lambda v: v >= 500),
                ("POST trainings alone p99 (ms)",
                 None if r.get("api_p99") is None else r["api_p99"] * 1000, "<= 100",
                 lambda v: v <= 100),
                ("ratio to the I/O floor", r.get("ratio"), ">= 0.1", lambda v: v >= 0.1)]
        print("summary (issue 22's targets)")
        for label, value, target, ok in rows:
            if value is None:
                continue
            print(f"  {label:<44} {value:10.3g}   target {target:<22} "
                  f"{'met' if ok(value) else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000, help="trainings in the throughput run")
    parser.add_argument("--gpu", type=float, default=0,
                        help="GPUs per training: whole (1, 2) or a portion of one (0.5)")
    parser.add_argument("--fraction-mix", action="store_true",
                        help="every other training asks for 0.25 or 0.5 of a GPU")
    parser.add_argument("--nodes", type=int, default=20,
                        help="run kubesim with this many 8-GPU nodes (110 pods each) in the "
                             "default pool (0: its built-in profile, 4 nodes, 440 pods: at 3 s "
                             "a pod that cluster holds at most ~130 workloads/s, so a run "
                             "measures a backlog waiting for room rather than Fairway)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--projects", type=int, default=1,
                        help="submit over this many projects in turn (lifecycle shards by "
                             "project: with lifecycle replicas, use several)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds to wait for a run's workloads to finish")
    parser.add_argument("--rate", type=float, default=50,
                        help="offered load in workloads/s for the latency run (0: skip it)")
    parser.add_argument("--rate-seconds", type=float, default=20)
    parser.add_argument("--api-count", type=int, default=3000,
                        help="POSTs in the API-alone run")
    parser.add_argument("--skip-api", action="store_true", help="skip the API-alone run")
    parser.add_argument("--replicas", default="",
                        help="processes per service, as FAIRWAY_REPLICAS: "
                             "submission=2,policy=2,scheduler=2 (the client uses every API)")
    parser.add_argument("--nats-replicas", type=int, default=1, choices=(1, 3, 5),
                        help="embedded NATS servers in one JetStream cluster")
    parser.add_argument("--skip-floor", action="store_true", help="skip the I/O floor")
    parser.add_argument("--floor-commits", type=int, default=1)
    parser.add_argument("--floor-publishes", type=int, default=10)
    parser.add_argument("--profile", action="store_true",
                        help="py-spy on each service during the throughput and offered-load "
                             "runs (a directory each)")
    parser.add_argument("--statements", action="store_true",
                        help="log every SQL statement during the throughput and offered-load "
                             "runs and print them by server time per workload")
    parser.add_argument("--profile-dir", type=Path,
                        default=Path(".fairway/bench") / time.strftime("profile-%Y%m%d-%H%M%S"))
    parser.add_argument("--against", metavar="REV",
                        help="run this tree and git revision REV at the same time, each on "
                             "its own stack, and print their figures side by side")
    args = parser.parse_args()
    if args.against:
        from tests.bench._against import run_side_by_side

        sys.exit(run_side_by_side(args.against, sys.argv[1:], Path(".fairway/bench")
                                  / time.strftime("against-%Y%m%d-%H%M%S")))
    with ExitStack() as resources:
        api_url = os.environ.get("FAIRWAY_API_URL")
        if api_url:
            stack = Stack(api_url, os.environ["FAIRWAY_TOKEN"], os.environ["NATS_URL"])
        else:
            from fairway_devstack.testing import running_stack

            state = Path(resources.enter_context(
                tempfile.TemporaryDirectory(prefix="fairway-bench")))
            print("starting the embedded stack ...", flush=True)
            overrides: dict = {}
            if args.replicas:
                overrides["replicas"] = parse_replicas(args.replicas)
            if args.nats_replicas > 1:
                overrides["nats_replicas"] = args.nats_replicas
            if args.nodes:
                profile = state / "gpu-nodes.yaml"
                profile.write_text(gpu_profile(args.nodes))
                overrides["kubesim_profile"] = str(profile)
            running = resources.enter_context(
                running_stack(state, env={"FAIRWAY_LOG_LEVEL": "WARNING"}, **overrides))
            info = running.info()["processes"]
            stack = Stack(
                running.api_url, Path(running.admin_token_file).read_text().strip(),
                running.nats_url, database_url=running.database_url,
                nats_monitor_url=",".join(entry["monitor_url"] for name, entry in info.items()
                                          if name.startswith("nats")),
                pids={name: entry["pid"] for name, entry in info.items() if entry.get("pid")},
                more_api_urls=tuple(entry["url"] for name, entry in info.items()
                                    if name.startswith("submission-")),
                stop_service=lambda name: running.kill_service(name, signal.SIGTERM),
                postgres_log=running.log_path("postgres"),
                lifecycle_urls=tuple(entry["url"] for name, entry in info.items()
                                     if name == "lifecycle" or name.startswith("lifecycle-")),
                service_urls=tuple(entry["url"] for name, entry in info.items()
                                   if name.split("-")[0] in SERVICES and entry.get("url")))
        code = asyncio.run(Bench(stack, args).main())
    sys.exit(code)


if __name__ == "__main__":
    main()
