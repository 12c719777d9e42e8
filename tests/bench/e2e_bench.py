"""`make bench`: trainings through the API on the embedded stack, end to end.

Submits N trainings that run 1 second (kubesim `run-seconds`), follows their phase events on
NATS, and prints throughput and the submit → Running and submit → Completed latency
percentiles. Starts its own stack in a temporary directory unless FAIRWAY_API_URL points at
a running one (then FAIRWAY_TOKEN and NATS_URL must be set too).

    make bench                                   # 500 trainings, 0 GPUs each
    make bench BENCH_ARGS="--count 200 --gpu 1"  # GPU-bound: queueing dominates
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import nats


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def run(api_url: str, token: str, nats_url: str, count: int, gpu: int, concurrency: int,
              timeout: float) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    submitted: dict[str, float] = {}
    running: dict[str, float] = {}
    finished: dict[str, tuple[float, str]] = {}
    run_tag = f"b{int(time.time()) % 100000}"

    nc = await nats.connect(nats_url)
    js = nc.jetstream()

    async def on_phase(msg) -> None:
        event = json.loads(msg.data)
        wid, phase = event["workloadId"], event["phase"]
        now = time.monotonic()
        if phase == "Running":
            running.setdefault(wid, now)
        elif phase in ("Completed", "Failed"):
            finished.setdefault(wid, (now, phase))

    sub = await js.subscribe("fairway.phase.>", stream="FAIRWAY_PHASES", ordered_consumer=True,
                             deliver_policy=nats.js.api.DeliverPolicy.NEW, cb=on_phase)
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as http:
        project_id = next(p["id"] for p in
                          (await http.get("/api/v1/org-unit/projects")).json()["projects"]
                          if p["name"] == "default")
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)
        errors: list[str] = []

        async def submitter() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = {"name": f"{run_tag}-{i}", "projectId": project_id, "spec": {
                    "image": "busybox", "compute": {"gpuDevicesRequest": gpu},
                    "annotations": [{"name": "sim.fairway.io/run-seconds", "value": "1"}]}}
                t0 = time.monotonic()
                response = await http.post("/api/v1/workloads/trainings", json=body)
                if response.status_code != 202:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                submitted[response.json()["workloadId"]] = t0

        started = time.monotonic()
        await asyncio.gather(*(submitter() for _ in range(concurrency)))
        submit_seconds = time.monotonic() - started
        print(f"submitted {len(submitted)} in {submit_seconds:.1f}s "
              f"({len(submitted) / submit_seconds:.0f}/s), {len(errors)} errors", flush=True)
        for e in errors[:5]:
            print("  ", e)
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            done = sum(1 for w in submitted if w in finished)
            if done != last:
                print(f"  {done}/{len(submitted)} finished, "
                      f"{sum(1 for w in submitted if w in running)} reached Running", flush=True)
                last = done
            if done == len(submitted):
                break
            await asyncio.sleep(1)
        total = time.monotonic() - started
    await sub.unsubscribe()
    await nc.close()

    to_running = [running[w] - t for w, t in submitted.items() if w in running]
    to_done = [finished[w][0] - t for w, t in submitted.items()
               if w in finished and finished[w][1] == "Completed"]
    failed = sum(1 for w in submitted if w in finished and finished[w][1] == "Failed")
    completed = len(to_done)
    print()
    print(f"trainings            {count} (gpu {gpu} each, run 1 s), concurrency {concurrency}")
    print(f"completed            {completed}   failed {failed}   "
          f"unfinished {len(submitted) - completed - failed}")
    print(f"wall time            {total:.1f} s")
    print(f"throughput           {completed / total:.1f} workloads/s (completed / wall time)")
    print(f"submit -> Running    p50 {pct(to_running, 50):.2f} s   p99 {pct(to_running, 99):.2f} s"
          f"   mean {statistics.fmean(to_running) if to_running else float('nan'):.2f} s")
    print(f"submit -> Completed  p50 {pct(to_done, 50):.2f} s   p99 {pct(to_done, 99):.2f} s")
    print(f"overhead ratio       p50 submit->Completed / 3 s of simulated work "
          f"(pull 1 + start 1 + run 1) = {pct(to_done, 50) / 3:.2f}")
    return 0 if completed == count else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with ExitStack() as stack:
        api_url = os.environ.get("FAIRWAY_API_URL")
        if api_url:
            token, nats_url = os.environ["FAIRWAY_TOKEN"], os.environ["NATS_URL"]
        else:
            from fairway_devstack.testing import running_stack

            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fairway-bench")))
            print("starting the embedded stack …", flush=True)
            running = stack.enter_context(running_stack(state, env={"FAIRWAY_LOG_LEVEL":
                                                                    "WARNING"}))
            api_url, nats_url = running.api_url, running.nats_url
            token = Path(running.admin_token_file).read_text().strip()
        code = asyncio.run(run(api_url, token, nats_url, args.count, args.gpu, args.concurrency,
                               args.timeout))
    sys.exit(code)


if __name__ == "__main__":
    main()
