"""Scenario table for the pure scheduling core: nodes, held allocations and waiting workloads
in; placements and pending reasons out."""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from fairway_scheduler.core import (
    Allocation,
    ClusterSnapshot,
    Node,
    PendingCode,
    Workload,
    schedule,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def node(name: str, gpus: int = 8, pool: str = "default", ready: bool = True) -> Node:
    return Node(name=name, pool=pool, ready=ready, gpus=gpus)


def workload(wid: str, gpus: int = 1, pods: int = 1, min_pods: int | None = None,
             priority: int = 50, at: int = 0, pools: tuple[str, ...] = (),
             waiting: tuple[str, ...] | None = None) -> Workload:
    return Workload(
        id=wid, project="team-a", priority=priority, submitted_at=T0 + timedelta(seconds=at),
        gpus_per_pod=gpus, pods=pods, min_pods=pods if min_pods is None else min_pods,
        node_pools=pools,
        waiting_pods=waiting if waiting is not None else tuple(f"{wid}-{i}" for i in range(pods)),
    )


def held(wid: str, pod: str, node_name: str, *devices: int, unknown: int = 0) -> Allocation:
    return Allocation(workload_id=wid, pod=pod, node=node_name, gpu_devices=devices,
                      unknown_devices=unknown)


@dataclass
class Scenario:
    name: str
    nodes: list[Node]
    workloads: list[Workload]
    allocations: list[Allocation] = field(default_factory=list)
    # workload id -> [(pod, node, devices)]
    placed: dict[str, list[tuple[str, str, tuple[int, ...]]]] = field(default_factory=dict)
    # workload id -> (code, message); message None: not checked
    pending: dict[str, tuple[PendingCode, str | None]] = field(default_factory=dict)


SCENARIOS = [
    Scenario(
        "one pod fits on the first node, lowest devices",
        nodes=[node("n1", 8), node("n2", 8)],
        workloads=[workload("w1", gpus=2)],
        placed={"w1": [("w1-0", "n1", (0, 1))]},
    ),
    Scenario(
        "devices already held are skipped, the lowest free ones taken",
        nodes=[node("n1", 4)],
        allocations=[held("w0", "w0-0", "n1", 0, 2)],
        workloads=[workload("w1", gpus=2)],
        placed={"w1": [("w1-0", "n1", (1, 3))]},
    ),
    Scenario(
        "a pod bound without a decision of ours takes the lowest free devices",
        nodes=[node("n1", 4)],
        allocations=[held("w0", "w0-0", "n1", unknown=3)],
        workloads=[workload("w1", gpus=1)],
        placed={"w1": [("w1-0", "n1", (3,))]},
    ),
    Scenario(
        "first fit moves on to the next node when the first is too full",
        nodes=[node("n1", 4), node("n2", 4)],
        allocations=[held("w0", "w0-0", "n1", 0, 1, 2)],
        workloads=[workload("w1", gpus=2)],
        placed={"w1": [("w1-0", "n2", (0, 1))]},
    ),
    Scenario(
        "nodes are tried in natural name order",
        nodes=[node("gpu-10", 8), node("gpu-2", 8)],
        workloads=[workload("w1", gpus=8)],
        placed={"w1": [("w1-0", "gpu-2", tuple(range(8)))]},
    ),
    Scenario(
        "a gang that fits is placed whole, across nodes",
        nodes=[node("n1", 4), node("n2", 4), node("n3", 4)],
        workloads=[workload("w1", gpus=4, pods=3)],
        placed={"w1": [("w1-0", "n1", (0, 1, 2, 3)), ("w1-1", "n2", (0, 1, 2, 3)),
                       ("w1-2", "n3", (0, 1, 2, 3))]},
    ),
    Scenario(
        "a gang that does not fit places nothing",
        nodes=[node("n1", 4), node("n2", 4)],
        workloads=[workload("w1", gpus=4, pods=3)],
        pending={"w1": (PendingCode.GANG_DOES_NOT_FIT,
                        "needs 3 pods with 4 GPUs each placed together; at most 2 fit in one "
                        "node pool now (node pool default)")},
    ),
    Scenario(
        "a gang that failed leaves its GPUs to the next workload",
        nodes=[node("n1", 4), node("n2", 4)],
        workloads=[workload("big", gpus=4, pods=3, priority=100), workload("small", gpus=4)],
        placed={"small": [("small-0", "n1", (0, 1, 2, 3))]},
        pending={"big": (PendingCode.GANG_DOES_NOT_FIT, None)},
    ),
    Scenario(
        "the gang waits until all its pods exist",
        nodes=[node("n1", 8)],
        workloads=[workload("w1", pods=4, waiting=("w1-0", "w1-1"))],
        pending={"w1": (PendingCode.WAITING_FOR_PODS, "needs 4 pods together; 2 exist so far")},
    ),
    Scenario(
        "pods beyond the gang follow while they fit, the rest wait with a reason",
        nodes=[node("n1", 2), node("n2", 1)],
        workloads=[workload("w1", gpus=1, pods=4, min_pods=2)],
        placed={"w1": [("w1-0", "n1", (0,)), ("w1-1", "n1", (1,)), ("w1-2", "n2", (0,))]},
        pending={"w1": (PendingCode.NO_FITTING_NODE,
                        "needs 1 more pod with 1 GPU; the largest free slot in node pool "
                        "default has 0 GPUs")},
    ),
    Scenario(
        "a gang already holding its minimum places new pods one by one",
        nodes=[node("n1", 2)],
        allocations=[held("w1", "w1-0", "n1", 0), held("w1", "w1-1", "n1", 1)],
        workloads=[workload("w1", gpus=1, pods=3, min_pods=2, waiting=("w1-2",))],
        pending={"w1": (PendingCode.NO_FITTING_NODE,
                        "needs 1 more pod with 1 GPU; the largest free slot in node pool "
                        "default has 0 GPUs")},
    ),
    Scenario(
        "node pools are tried in the workload's order of preference",
        nodes=[node("a1", 8, pool="a100"), node("t1", 4, pool="t4")],
        allocations=[held("w0", "w0-0", "a1", *range(8))],
        workloads=[workload("w1", gpus=2, pools=("a100", "t4"))],
        placed={"w1": [("w1-0", "t1", (0, 1))]},
    ),
    Scenario(
        "a preferred pool with room wins over a later one",
        nodes=[node("a1", 8, pool="a100"), node("t1", 4, pool="t4")],
        workloads=[workload("w1", gpus=2, pools=("t4", "a100"))],
        placed={"w1": [("w1-0", "t1", (0, 1))]},
    ),
    Scenario(
        "without a preference, default goes first",
        nodes=[node("a1", 8, pool="a100"), node("d1", 8, pool="default")],
        workloads=[workload("w1", gpus=1)],
        placed={"w1": [("w1-0", "d1", (0,))]},
    ),
    Scenario(
        "pools the workload did not ask for are never used",
        nodes=[node("a1", 8, pool="a100"), node("d1", 8, pool="default")],
        workloads=[workload("w1", gpus=1, pools=("t4",))],
        pending={"w1": (PendingCode.NO_NODE_IN_POOLS, "no node in node pool t4")},
    ),
    Scenario(
        "a gang is never split across pools",
        nodes=[node("a1", 4, pool="a100"), node("t1", 4, pool="t4")],
        workloads=[workload("w1", gpus=4, pods=2, pools=("a100", "t4"))],
        pending={"w1": (PendingCode.GANG_DOES_NOT_FIT,
                        "needs 2 pods with 4 GPUs each placed together; at most 1 fit in one "
                        "node pool now (node pool a100)")},
    ),
    Scenario(
        "new pods of a workload join the pool its placed pods are in",
        nodes=[node("a1", 1, pool="a100"), node("t1", 8, pool="t4")],
        allocations=[held("w1", "w1-0", "a1", 0)],
        workloads=[workload("w1", gpus=1, pods=2, min_pods=1, pools=("t4", "a100"),
                            waiting=("w1-1",))],
        pending={"w1": (PendingCode.NO_FITTING_NODE,
                        "needs 1 more pod with 1 GPU; the largest free slot in node pool "
                        "a100 has 0 GPUs")},
    ),
    Scenario(
        "NotReady nodes are skipped",
        nodes=[node("n1", 8, ready=False), node("n2", 8)],
        workloads=[workload("w1", gpus=1)],
        placed={"w1": [("w1-0", "n2", (0,))]},
    ),
    Scenario(
        "no ready node at all",
        nodes=[node("n1", 8, ready=False), node("n2", 8, ready=False)],
        workloads=[workload("w1", gpus=1)],
        pending={"w1": (PendingCode.NO_READY_NODE, "node pool default has 2 nodes, none ready")},
    ),
    Scenario(
        "a pod larger than any node",
        nodes=[node("a1", 8, pool="a100"), node("t1", 4, pool="t4")],
        workloads=[workload("w1", gpus=16, pools=("a100", "t4"))],
        pending={"w1": (PendingCode.NO_NODE_LARGE_ENOUGH,
                        "needs 16 GPUs per pod; the largest ready node in node pools a100, t4 "
                        "has 8 GPUs")},
    ),
    Scenario(
        "no node has that much free",
        nodes=[node("a1", 8, pool="a100"), node("t1", 4, pool="t4")],
        allocations=[held("w0", "w0-0", "a1", *range(6))],
        workloads=[workload("w1", gpus=8, pools=("a100", "t4"))],
        pending={"w1": (PendingCode.NO_FITTING_NODE,
                        "needs 1 pod with 8 GPUs; the largest free slot in node pools a100, t4 "
                        "has 4 GPUs")},
    ),
    Scenario(
        "no nodes at all",
        nodes=[],
        workloads=[workload("w1")],
        pending={"w1": (PendingCode.NO_NODE_IN_POOLS, "no node in any node pool")},
    ),
    Scenario(
        "higher priority is placed first",
        nodes=[node("n1", 1)],
        workloads=[workload("low", priority=50, at=0), workload("high", priority=125, at=9)],
        placed={"high": [("high-0", "n1", (0,))]},
        pending={"low": (PendingCode.NO_FITTING_NODE, None)},
    ),
    Scenario(
        "equal priority: the earlier submission first",
        nodes=[node("n1", 1)],
        workloads=[workload("late", at=5), workload("early", at=1)],
        placed={"early": [("early-0", "n1", (0,))]},
        pending={"late": (PendingCode.NO_FITTING_NODE, None)},
    ),
    Scenario(
        "equal priority and time: the id decides",
        nodes=[node("n1", 1)],
        workloads=[workload("b"), workload("a")],
        placed={"a": [("a-0", "n1", (0,))]},
        pending={"b": (PendingCode.NO_FITTING_NODE, None)},
    ),
    Scenario(
        "a smaller workload behind a blocked one still fits (first fit, no reservation)",
        nodes=[node("n1", 4)],
        workloads=[workload("big", gpus=8, priority=100), workload("small", gpus=2)],
        placed={"small": [("small-0", "n1", (0, 1))]},
        pending={"big": (PendingCode.NO_NODE_LARGE_ENOUGH, None)},
    ),
    Scenario(
        "pods without GPUs go to the first ready node",
        nodes=[node("n1", 1, ready=False), node("n2", 0)],
        workloads=[workload("cpu", gpus=0, pods=2)],
        placed={"cpu": [("cpu-0", "n2", ()), ("cpu-1", "n2", ())]},
    ),
    Scenario(
        "a workload with nothing waiting is left alone",
        nodes=[node("n1", 1)],
        allocations=[held("w1", "w1-0", "n1", 0)],
        workloads=[workload("w1", waiting=())],
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario):
    result = schedule(ClusterSnapshot(nodes=tuple(scenario.nodes),
                                      workloads=tuple(scenario.workloads),
                                      allocations=tuple(scenario.allocations)))

    placed = {p.workload_id: [(pp.pod, pp.node, pp.gpu_devices) for pp in p.pods]
              for p in result.placements}
    assert placed == scenario.placed
    pending = {r.workload_id: (r.code, r.message) for r in result.pending}
    assert pending.keys() == scenario.pending.keys()
    for wid, (code, message) in scenario.pending.items():
        assert pending[wid][0] == code
        if message is not None:
            assert pending[wid][1] == message


def test_the_same_snapshot_gives_the_same_result_in_any_input_order():
    nodes = [node(f"n{i}", gpus=i % 4 + 1, pool=("a" if i % 2 else "b")) for i in range(12)]
    workloads = [workload(f"w{i}", gpus=i % 3 + 1, pods=i % 3 + 1, priority=(i % 4) * 25,
                          at=i % 5) for i in range(20)]
    reference = schedule(ClusterSnapshot(tuple(nodes), tuple(workloads)))
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(nodes)
        rng.shuffle(workloads)
        assert schedule(ClusterSnapshot(tuple(nodes), tuple(workloads))) == reference


def test_no_device_is_given_twice():
    nodes = tuple(node(f"n{i}", gpus=8) for i in range(4))
    workloads = tuple(workload(f"w{i}", gpus=3, pods=2, min_pods=1) for i in range(10))
    result = schedule(ClusterSnapshot(nodes, workloads))
    taken = [(pp.node, d) for p in result.placements for pp in p.pods for d in pp.gpu_devices]
    assert len(taken) == len(set(taken))
    assert all(d < 8 for _, d in taken)
