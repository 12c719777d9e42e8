"""Consolidation's movable pods per node, kept between cycles in the ledger's index
(`HoldIndex.movable`, corrected by `Solver.movable` for the workloads the cycle changed),
against the walk of every workload's holds that `consolidate._movable` made every cycle
before (`movable_afresh`): after random sequences of pods bound and released, workloads
changed (made again, another minimum, evicting pods, gone from the snapshot) and nodes made
ready or not, cycle after cycle on one ledger, and within a cycle after evictions and moves.
The same nodes, and on each the same pods in the same order."""

from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fairway_scheduler.core import Allocation, ClusterSnapshot, Node, NodePool, Workload
from fairway_scheduler.core.actions.consolidate import _movable, movable_afresh
from fairway_scheduler.core.actions.solver import Solver, Unit
from fairway_scheduler.core.framework import Session
from fairway_scheduler.core.ledger import Ledger

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NODES = [("n1", "a"), ("n2", "a"), ("n3", "b"), ("n10", "b")]
WIDS = [f"w{i}" for i in range(6)]
PODS = ["p0", "p1", "p2", "p10"]


def check(solver: Solver) -> None:
    for pool in ("a", "b"):
        want = movable_afresh(solver, pool)
        got = _movable(solver, pool)
        assert sorted(got) == sorted(want)
        for idx, holds in want.items():
            assert [(h.workload.id, h.pod) for h in got[idx]] == [
                (h.workload.id, h.pod) for h in holds]
            assert all(a is b for a, b in zip(got[idx], holds, strict=True))


step = st.one_of(
    st.tuples(st.just("hold"), st.sampled_from(WIDS), st.sampled_from(PODS),
              st.integers(0, len(NODES) - 1), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("release"), st.sampled_from(WIDS), st.sampled_from(PODS)),
    st.tuples(st.just("workload"), st.sampled_from(WIDS), st.booleans(), st.booleans(),
              st.integers(1, 3), st.sets(st.sampled_from(PODS)), st.booleans()),
    st.tuples(st.just("node"), st.integers(0, len(NODES) - 1)),
    st.tuples(st.just("cycle"), st.lists(st.tuples(st.sampled_from(WIDS),
                                                   st.sampled_from(["pod", "all", "move"])),
                                         max_size=4), st.booleans()),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=40))
@example([("hold", "w0", "p0", 0, 0, False), ("hold", "w1", "p0", 0, 1, False),
          ("cycle", [], False), ("workload", "w0", True, True, 1, set(), False)])
def test_the_kept_movable_pods_are_those_found_afresh(steps):
    nodes = {name: Node(name, pool, True, 4, cpu_millis=8000, memory_mib=8192)
             for name, pool in NODES}
    ledger = Ledger(nodes.values())
    workloads = {wid: Workload(wid, "x" if i % 2 else "y", i % 3, T0, 1, pods=4)
                 for i, wid in enumerate(WIDS)}
    present = set(WIDS)
    for kind, *args in [*steps, ("cycle", [], True)]:
        if kind == "hold":
            wid, pod, n, device, fraction = args
            w = workloads[wid]
            ledger.hold(Allocation(wid, pod, NODES[n][0], (device,) if device < 3 else (),
                                   portion=0.5 if fraction else None, cpu_millis=100),
                        w.project, w.preemptible)
        elif kind == "release":
            ledger.release(*args)
        elif kind == "workload":
            wid, preemptible, again, min_pods, evicting, gone = args
            old = workloads[wid]
            if (again or preemptible != old.preemptible or min_pods != old.min_pods
                    or tuple(evicting) != old.evicting_pods):
                workloads[wid] = Workload(wid, old.project, old.priority, T0, 1,
                                          min_pods=min_pods, pods=4, preemptible=preemptible,
                                          evicting_pods=tuple(sorted(evicting)))
            (present.discard if gone else present.add)(wid)
        elif kind == "node":
            name = NODES[args[0]][0]
            old_node = nodes[name]
            nodes[name] = Node(name, old_node.pool, not old_node.ready, 4, cpu_millis=8000,
                               memory_mib=8192)
        else:
            changes, ask_first = args
            snapshot = ClusterSnapshot(tuple(nodes.values()),
                                       tuple(workloads[w] for w in WIDS if w in present),
                                       pools=(NodePool("a"), NodePool("b")))
            solver = Solver(Session(snapshot, ledger))
            if ask_first:
                check(solver)
            for wid, how in changes:  # within the cycle: evicted (a pod, or all), moved
                holds = solver.holds.get(wid)
                if not holds:
                    continue
                if how == "move":
                    solver.record_move(Unit(holds[0].workload, holds, False), holds[0].pool,
                                       holds[0].workload, "reclaim")
                else:
                    taken = holds[-1:] if how == "pod" else holds
                    solver.record_eviction(Unit(holds[0].workload, taken, how == "pod"),
                                           "reclaim", None, "")
                check(solver)
            check(solver)
