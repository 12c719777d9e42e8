"""The scheduler's kept ledger with foreign usage (issue 18): a cycle's ledger kept between
cycles (only the changed workloads, and foreign pods on their nodes, held again) against one
built afresh (`Ledger.of`, what every cycle did while any node had foreign usage); the two are
checked equal every cycle.

    .venv/bin/python -m tests.bench.foreign_ledger_bench
"""

import time
from datetime import UTC, datetime

from fairway_contracts.workloads import Phase
from fairway_scheduler import core
from fairway_scheduler.core import Ledger, Node
from fairway_scheduler.core.cluster import ClusterState, PodStatus, WorkloadRequest, WorkloadStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    nodes, workloads, pods_each = 1000, 2000, 3  # 8 GPUs a node; 6000 pods of 1 GPU
    state = ClusterState()
    for n in range(nodes):
        state.put_node(Node(f"n{n}", "default", True, 8, cpu_millis=64000, memory_mib=262144))
    slot = 0
    for w in range(workloads):
        wid = f"w{w}"
        state.add_request(WorkloadRequest(
            id=wid, project=f"p{w % 20}", priority_class="train", priority=50,
            preemptible=True, node_pools=(), pods=pods_each, min_pods=pods_each,
            gpus_per_pod=1, submitted_at=T0))
        pods = []
        for i in range(pods_each):
            node, dev = divmod(slot, 6)  # 6 of 8 devices used
            slot += 1
            state.add_placement(core.Placement(
                wid, (core.PodPlacement(f"{wid}-{i}", f"n{node}", (dev,)),)))
            pods.append(PodStatus(f"{wid}-{i}", node=f"n{node}", phase="Running", gpus=1))
        state.apply_status(WorkloadStatus(workload_id=wid, project=f"p{w % 20}", sequence=1,
                                          phase=Phase.RUNNING, pods=tuple(pods)), released=())
    for n in range(0, nodes, 2):  # foreign pods (a DaemonSet, a GPU pod) on half the nodes
        state.put_foreign(f"n{n}", 3, 1, 2000, 4096)
    state.kept_ledger(state.snapshot())
    kept = fresh = 0.0
    cycles = 200
    for c in range(cycles):
        wid = f"w{c % workloads}"
        state.apply_status(WorkloadStatus(workload_id=wid, project="p0", sequence=c + 2,
                                          phase=Phase.RUNNING, pods=()), released=[f"{wid}-0"])
        if c % 10 == 0:
            state.put_foreign(f"n{2 * (c % 50)}", 2 + c % 3, 1, 1000, 2048)
        snapshot = state.snapshot()
        started = time.perf_counter()
        ledger = state.kept_ledger(snapshot)
        kept += time.perf_counter() - started
        started = time.perf_counter()
        built = Ledger.of(snapshot)
        fresh += time.perf_counter() - started
        assert ledger is not None and ledger.holdings() == built.holdings()
    print(f"{nodes} nodes, {len(state.allocations)} allocations, {len(state.foreign)} nodes with "
          f"foreign usage, {cycles} cycles (one workload changed each, foreign usage every 10th)")
    print(f"kept ledger: {1000 * kept / cycles:.2f} ms/cycle; fresh Ledger.of: "
          f"{1000 * fresh / cycles:.2f} ms/cycle")


if __name__ == "__main__":
    main()
