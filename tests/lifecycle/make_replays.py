"""Writes the replay examples in tests/lifecycle/replays/.

    python -m tests.lifecycle.make_replays


Each file is a recorded-looking stream of pod watch events for one workload; test_replays.py
pins the transitions the fold must publish for it. They double as examples of the format.
"""

import json
from pathlib import Path
from typing import Any

from tests.lifecycle.podfactory import pod

HERE = Path(__file__).parent / "replays"


def workload(wid: str, kind: str = "training", **extra: Any) -> dict:
    return {"type": "WORKLOAD", "object": {"workloadId": wid, "name": wid, "project": "team-a",
                                           "workloadType": kind, "pods": 1, "minPods": 1,
                                           "backoffLimit": 6, **extra}}


def ev(kind: str, obj: dict, time: str | None = None) -> dict:
    line = {"type": kind, "object": obj}
    if time:
        line["time"] = time
    return line


def action(wid: str, what: str) -> dict:
    return {"type": "ACTION", "object": {"workloadId": wid, "action": what}}


def lifecycle(name: str, wid: str, *stages: str, **kw: Any) -> list[dict]:
    """ADDED unbound, then MODIFIED through `stages`."""
    out = [ev("ADDED", pod(name, workload=wid, **kw))]
    out += [ev("MODIFIED", pod(name, workload=wid, stage=s, node="a100-1", **kw))
            for s in stages]
    return out


def examples() -> dict[str, list[dict]]:
    ex: dict[str, list[dict]] = {}
    ex["training-completes"] = [workload("t1"), *lifecycle(
        "t1-0", "t1", "pulling", "starting", "running", "succeeded")]
    ex["training-exit-code-retried-then-failed"] = [
        workload("t2", backoffLimit=1),
        *lifecycle("t2-1", "t2", "pulling", "running"),
        ev("MODIFIED", pod("t2-1", workload="t2", stage="failed", exit_code=3, node="a100-1")),
        *lifecycle("t2-2", "t2", "pulling", "running", attempt=2),
        ev("MODIFIED", pod("t2-2", workload="t2", stage="failed", exit_code=3, node="a100-1",
                           attempt=2)),
    ]
    ex["training-exit-code-no-retries"] = [
        workload("t3", backoffLimit=0), *lifecycle("t3-0", "t3", "pulling", "running"),
        ev("MODIFIED", pod("t3-0", workload="t3", stage="failed", exit_code=2, node="a100-1")),
    ]
    ex["training-oom-killed"] = [
        workload("t4", backoffLimit=0), *lifecycle("t4-0", "t4", "pulling", "running"),
        ev("MODIFIED", pod("t4-0", workload="t4", stage="failed", exit_code=137,
                           reason="OOMKilled", node="a100-1")),
    ]
    ex["training-image-pull-backoff"] = [
        ev("WORKLOAD", workload("t5")["object"], "2026-01-01T00:00:00Z"),
        ev("ADDED", pod("t5-0", workload="t5"), "2026-01-01T00:00:01Z"),
        ev("MODIFIED", pod("t5-0", workload="t5", stage="pulling", node="a100-1",
                           bound_at="2026-01-01T00:00:02Z"), "2026-01-01T00:00:02Z"),
        ev("MODIFIED", pod("t5-0", workload="t5", stage="pull-error", node="a100-1",
                           bound_at="2026-01-01T00:00:02Z"), "2026-01-01T00:00:05Z"),
        ev("MODIFIED", pod("t5-0", workload="t5", stage="pull-backoff", node="a100-1",
                           bound_at="2026-01-01T00:00:02Z"), "2026-01-01T00:01:00Z"),
        ev("MODIFIED", pod("t5-0", workload="t5", stage="pull-backoff", node="a100-1",
                           bound_at="2026-01-01T00:00:02Z"), "2026-01-01T00:05:10Z"),
    ]
    ex["training-config-error"] = [
        workload("t6"), *lifecycle("t6-0", "t6", "pulling", "config-error")]
    ex["workspace-crash-loop-degraded-then-healed"] = [
        workload("ws1", "workspace"), *lifecycle("ws1-0", "ws1", "pulling", "running",
                                                 "crashloop", "running")]
    ex["workspace-node-not-ready"] = [
        workload("ws2", "workspace"), *lifecycle("ws2-0", "ws2", "pulling", "running",
                                                 "node-not-ready", "running")]
    ex["inference-replica-lost-and-replaced"] = [
        workload("inf1", "inference", pods=2, minPods=1),
        *lifecycle("inf1-0", "inf1", "pulling", "running", role="replica"),
        *lifecycle("inf1-1", "inf1", "pulling", "running", role="replica"),
        ev("DELETED", pod("inf1-1", workload="inf1", stage="running", node="a100-1",
                          role="replica")),
        *lifecycle("inf1-2", "inf1", "pulling", "running", role="replica"),
    ]
    # Two replicas, a minimum of one: it serves as soon as one runs; the second waits for
    # room, and once it has waited past the grace period the workload is Degraded.
    ex["inference-second-replica-waits-for-room"] = [
        workload("inf2", "inference", pods=2, minPods=1, belowRequestedGraceSeconds=300),
        ev("ADDED", pod("inf2-0", workload="inf2", role="replica"), "2026-01-01T00:00:01Z"),
        ev("ADDED", pod("inf2-1", workload="inf2", role="replica"), "2026-01-01T00:00:01Z"),
        ev("MODIFIED", pod("inf2-0", workload="inf2", role="replica", stage="pulling",
                           node="a100-1"), "2026-01-01T00:00:02Z"),
        ev("MODIFIED", pod("inf2-0", workload="inf2", role="replica", stage="running",
                           node="a100-1"), "2026-01-01T00:00:10Z"),
        ev("MODIFIED", pod("inf2-0", workload="inf2", role="replica", stage="running",
                           node="a100-1", restarts=0), "2026-01-01T00:05:30Z"),
        ev("MODIFIED", pod("inf2-1", workload="inf2", role="replica", stage="running",
                           node="a100-2"), "2026-01-01T00:06:00Z"),
    ]
    # An elastic PyTorch job (a master and two workers, a minimum of one worker): it runs on
    # its minimum, takes its second worker when room appears, and loses it to a reclaim
    # without stopping.
    ex["distributed-elastic-grows-and-shrinks"] = [
        workload("d3", "distributed", pods=3, minPods=2, distributedFramework="PyTorch"),
        *[ev("ADDED", pod(f"d3-{r}", workload="d3", role=r.rstrip("01")))
          for r in ("master", "worker0", "worker1")],
        *[ev("MODIFIED", pod(f"d3-{r}", workload="d3", role=r.rstrip("01"), stage="running",
                             node="a100-1")) for r in ("master", "worker0")],
        ev("MODIFIED", pod("d3-worker1", workload="d3", role="worker", stage="running",
                           node="a100-2")),
        ev("DELETED", pod("d3-worker1", workload="d3", role="worker", stage="running",
                          node="a100-2")),
        ev("ADDED", pod("d3-worker1", workload="d3", role="worker", uid="uid-d3-worker1-b")),
    ]
    ex["training-node-lost-retried"] = [
        workload("t7"), *lifecycle("t7-1", "t7", "pulling", "running", "unknown", "node-lost"),
        *lifecycle("t7-2", "t7", "pulling", "running", "succeeded", attempt=2),
    ]
    ex["training-stopped-and-resumed"] = [
        workload("t8"), *lifecycle("t8-0", "t8", "pulling", "running"),
        action("t8", "stop"),
        ev("DELETED", pod("t8-0", workload="t8", stage="running", node="a100-1")),
        action("t8", "resume"),
        *lifecycle("t8-0", "t8", "pulling", "running", "succeeded"),
    ]
    ex["training-deleted"] = [
        workload("t9"), *lifecycle("t9-0", "t9", "pulling", "running"),
        action("t9", "delete"),
        ev("DELETED", pod("t9-0", workload="t9", stage="running", node="a100-1")),
    ]
    ex["training-completed-then-deleted"] = [
        workload("t12"), *lifecycle("t12-0", "t12", "pulling", "running", "succeeded"),
        action("t12", "delete"),
        ev("DELETED", pod("t12-0", workload="t12", stage="succeeded", node="a100-1")),
        action("t12", "stop"),
    ]
    ex["training-preempted-and-rescheduled"] = [
        workload("t10"), *lifecycle("t10-0", "t10", "pulling", "running"),
        action("t10", "preempt"),
        ev("MODIFIED", pod("t10-0", workload="t10", stage="evicted", node="a100-1")),
        ev("DELETED", pod("t10-0", workload="t10", stage="evicted", node="a100-1")),
        # made again under the same name: a new object, a new uid
        *lifecycle("t10-0", "t10", "pulling", "running", "succeeded", uid="uid-t10-0-again"),
    ]
    ex["training-preempted-terminates"] = [
        workload("t11", terminateAfterPreemption=True),
        *lifecycle("t11-0", "t11", "pulling", "running"), action("t11", "preempt"),
    ]
    dist = {"pods": 3, "minPods": 3, "distributedFramework": "PyTorch"}
    ex["distributed-pytorch-master-completes"] = [
        workload("d1", "distributed", **dist),
        *[ev("ADDED", pod(f"d1-{r}", workload="d1", role=r.rstrip("01")))
          for r in ("master", "worker0", "worker1")],
        *[ev("MODIFIED", pod(f"d1-{r}", workload="d1", role=r.rstrip("01"), stage="running",
                             node="a100-1")) for r in ("master", "worker0", "worker1")],
        ev("MODIFIED", pod("d1-worker0", workload="d1", role="worker", stage="succeeded",
                           node="a100-1")),
        ev("MODIFIED", pod("d1-master", workload="d1", role="master", stage="succeeded",
                           node="a100-1")),
    ]
    ex["distributed-worker-fails"] = [
        workload("d2", "distributed", backoffLimit=0, **dist),
        *[ev("ADDED", pod(f"d2-{r}", workload="d2", role=r.rstrip("01")))
          for r in ("master", "worker0", "worker1")],
        *[ev("MODIFIED", pod(f"d2-{r}", workload="d2", role=r.rstrip("01"), stage="running",
                             node="a100-1")) for r in ("master", "worker0", "worker1")],
        ev("MODIFIED", pod("d2-worker1", workload="d2", role="worker", stage="failed",
                           exit_code=1, node="a100-1")),
    ]
    return ex


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, lines in examples().items():
        (HERE / f"{name}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"wrote {len(examples())} replay files to {HERE}")


if __name__ == "__main__":
    main()
