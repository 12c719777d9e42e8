"""`make bench-lifecycle`: the phase fold alone, events per second in one process.

Replays recorded-looking pod watch events (the replay examples' stages, for many workloads)
through the same engine as `fairway lifecycle replay` and the service.

    make bench-lifecycle                         # 4,000 workloads, ~30,000 events
    make bench-lifecycle BENCH_ARGS="--workloads 500"
"""

import argparse
import gc
import json
import statistics
import time

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


if __name__ == "__main__":
    main()
