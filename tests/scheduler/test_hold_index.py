"""The solver's index of running pods, kept between cycles in the ledger (`HoldIndex`), against
the index built afresh from the ledger's entries as the solver built it every cycle before:
after random sequences of pods bound and released, workloads changed (made again, evicting
pods, gone from the snapshot) and nodes made ready or not, cycle after cycle on one ledger.
Within a cycle, evictions before and after `on_node` is first asked change what the solver
answers as they did before."""

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairway_scheduler.core import (
    Allocation,
    ClusterSnapshot,
    Node,
    NodePool,
    Workload,
    decide,
)
from fairway_scheduler.core.actions.solver import Solver, Unit
from fairway_scheduler.core.framework import Hold, Session
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.nodes import natural
from tests.scheduler.test_disruption_walk import alike

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NODES = [("n1", "a"), ("n2", "a"), ("n3", "b"), ("n10", "b")]
WIDS = [f"w{i}" for i in range(6)]
PODS = ["p0", "p1", "p2"]


def reference(session: Session, holds_at_first_ask: dict[str, list[Hold]] | None = None
              ) -> dict:
    """What `Solver` built every cycle before the index was kept: every ledger entry walked
    (and, for `on_node` and its sums, the holds as they were when first asked)."""
    placed = {p.workload_id for p in session.placements}
    workloads = {w.id: w for w in session.snapshot.workloads}
    holds: dict[str, list[Hold]] = {}
    freed: list[Hold] = []
    for (wid, pod), entry in session.ledger.entries():
        node = session.nodes.get(entry[0]) if entry[0] is not None else None
        if node is None or not node.ready or node.pool not in session.pools:
            continue
        workload = workloads.get(wid)
        if workload is None:
            continue
        hold = Hold(workload, pod, node.name, node.idx, node.pool, *entry[1:5])
        if workload.evicting_pods and pod in workload.evicting_pods:
            freed.append(hold)
        elif wid not in placed:
            holds.setdefault(wid, []).append(hold)
    by_queue: dict[tuple[str, str], set[str]] = {}
    for wid, hold_list in holds.items():
        hold_list.sort(key=lambda h: natural(h.pod))
        by_queue.setdefault((hold_list[0].workload.project, hold_list[0].pool), set()).add(wid)
    first_ask = holds if holds_at_first_ask is None else holds_at_first_ask
    on_node: dict[int, list[str]] = {}
    gpu_nodes: dict[tuple[str, str], set[int]] = {}
    for wid, hold_list in first_ask.items():
        for i in dict.fromkeys(h.idx for h in hold_list):
            on_node.setdefault(i, []).append(wid)
        if hold_list[0].workload.preemptible:
            on = {h.idx for h in hold_list if h.gpu}
            if on:
                gpu_nodes.setdefault((hold_list[0].workload.project, hold_list[0].pool),
                                     set()).update(on)
    return {"holds": list(holds.items()), "freed": freed, "by_queue": by_queue,
            "on_node": on_node, "gpu_nodes": gpu_nodes}


def held_on(solver: Solver, on_node: dict[int, list[str]], idx: int) -> dict[str, int]:
    """`held_on` as it was: the node's workloads when first asked, their holds now."""
    held: dict[str, int] = {}
    for wid in on_node.get(idx, ()):
        holds = solver.holds.get(wid)
        if holds and holds[0].workload.preemptible:
            project = holds[0].workload.project
            held[project] = held.get(project, 0) + sum(h.gpu for h in holds if h.idx == idx)
    return held


def nonzero(held: dict[str, int]) -> dict[str, int]:
    return {p: m for p, m in held.items() if m}


def check(solver: Solver, want: dict, asked: dict[int, dict[str, int]] | None = None
          ) -> None:
    """`asked`: `held_on` of nodes asked before, as it answered then (it answers so for the
    rest of the cycle)."""
    assert list(solver.holds.items()) == want["holds"]
    assert solver.freed == want["freed"]
    by_queue = {k: {w for w in v if w in solver.holds} for k, v in solver.by_queue.items()}
    assert {k: v for k, v in by_queue.items() if v} == want["by_queue"]
    for idx in range(len(NODES)):
        assert solver.on_node(idx) == want["on_node"].get(idx, [])
        then = (asked or {}).get(idx)
        assert nonzero(solver.held_on(idx)) == nonzero(
            then if then is not None else held_on(solver, want["on_node"], idx))
    for project in ("x", "y"):
        for pool in ("a", "b"):
            assert set(solver.gpu_nodes_of([project], pool)) == want["gpu_nodes"].get(
                (project, pool), set())
    for project in ("x", "y"):  # preempt's look: none missed for lack of looking
        for pool in ("a", "b"):
            for priority in range(4):
                got = solver.live_units_below(project, pool, priority)
                assert [(u.workload.id, [h.pod for h in u.holds]) for u in got] == [
                    (u.workload.id, [h.pod for h in u.holds])
                    for u in solver.live_units(project, pool) if u.workload.priority < priority]
    assert set(solver.gpu_nodes_of(["x", "y"], "a")) == (
        want["gpu_nodes"].get(("x", "a"), set()) | want["gpu_nodes"].get(("y", "a"), set()))


step = st.one_of(
    st.tuples(st.just("hold"), st.sampled_from(WIDS), st.sampled_from(PODS),
              st.integers(0, len(NODES) - 1), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("release"), st.sampled_from(WIDS), st.sampled_from(PODS)),
    st.tuples(st.just("workload"), st.sampled_from(WIDS), st.booleans(), st.booleans(),
              st.sets(st.sampled_from(PODS)), st.booleans()),
    st.tuples(st.just("node"), st.integers(0, len(NODES) - 1)),
    st.tuples(st.just("cycle"), st.lists(st.tuples(st.sampled_from(WIDS), st.booleans()),
                                          max_size=4), st.integers(0, 4),
              st.sampled_from(["on_node", "held_on", "gpu_nodes_of"]),
              st.integers(0, len(NODES) - 1)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=40))
def test_the_kept_index_answers_as_one_built_afresh(steps):
    nodes = {name: Node(name, pool, True, 4, cpu_millis=8000, memory_mib=8192)
             for name, pool in NODES}
    ledger = Ledger(nodes.values())
    workloads = {wid: Workload(wid, "x" if i % 2 else "y", i % 3, T0, 1)
                 for i, wid in enumerate(WIDS)}
    present = set(WIDS)
    for kind, *args in [*steps, ("cycle", [], 0, "on_node", 0)]:
        if kind == "hold":
            wid, pod, n, device, fraction = args
            name = NODES[n][0]
            w = workloads[wid]
            ledger.hold(Allocation(wid, pod, name, (device,) if device < 3 else (),
                                   portion=0.5 if fraction else None, cpu_millis=100),
                        w.project, w.preemptible)
        elif kind == "release":
            ledger.release(*args)
        elif kind == "workload":
            wid, preemptible, again, evicting, gone = args
            old = workloads[wid]
            if again or preemptible != old.preemptible or tuple(evicting) != old.evicting_pods:
                workloads[wid] = Workload(wid, old.project, old.priority, T0, 1,
                                          preemptible=preemptible,
                                          evicting_pods=tuple(sorted(evicting)))
            (present.discard if gone else present.add)(wid)
        elif kind == "node":
            name = NODES[args[0]][0]
            old_node = nodes[name]
            nodes[name] = Node(name, old_node.pool, not old_node.ready, 4, cpu_millis=8000,
                               memory_mib=8192)
        else:
            evictions, first_ask_after, asked, idx = args
            snapshot = ClusterSnapshot(tuple(nodes.values()),
                                       tuple(workloads[w] for w in WIDS if w in present),
                                       pools=(NodePool("a"), NodePool("b")))
            session = Session(snapshot, ledger)
            fresh = Solver(session)
            want = reference(session)
            check(fresh, want)
            priorities: dict[tuple[str, str], dict[int, int]] = {}
            for _, hold_list in want["holds"]:
                w = hold_list[0].workload
                if w.preemptible:
                    counts = priorities.setdefault((w.project, hold_list[0].pool), {})
                    counts[w.priority] = counts.get(w.priority, 0) + 1
            assert fresh.index.priorities == priorities
            # the same cycle again, with evictions, some before `on_node` is first asked
            session = Session(snapshot, ledger)
            solver = Solver(session)
            first: dict[str, list[Hold]] | None = None
            then: dict[int, dict[str, int]] = {}
            for i, (wid, surplus) in enumerate(evictions):
                if i == first_ask_after:
                    first = dict(solver.holds)
                    if asked == "gpu_nodes_of":
                        solver.gpu_nodes_of(["x"], NODES[idx][1])
                    else:
                        getattr(solver, asked)(idx)
                    if asked == "held_on":
                        then[idx] = held_on(solver, reference(session, first)["on_node"], idx)
                holds = solver.holds.get(wid)
                if holds:
                    taken = holds[-1:] if surplus else holds
                    solver.record_eviction(Unit(holds[0].workload, taken, surplus), "reclaim",
                                           None, "")
            if first is None:
                first = dict(solver.holds)
            want = reference(session, first)
            want["holds"] = list(solver.holds.items())
            start = reference(session)["by_queue"]  # as the cycle began, less what left
            want["by_queue"] = {k: v & solver.holds.keys() for k, v in start.items()
                                if v & solver.holds.keys()}
            check(solver, want, then)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alike(), st.lists(st.lists(st.integers(0, 40), max_size=3), min_size=2, max_size=4))
def test_cycles_on_a_kept_ledger_decide_as_on_one_built_afresh(snapshot, finishing):
    """Cycle after cycle on one ledger kept as the service keeps it (bound pods held, evicted
    and finished ones released; workloads that did not change are the same objects), the
    cycle decides as on a ledger built afresh from the snapshot."""
    cycles_on_a_kept_ledger(snapshot, finishing)


def cycles_on_a_kept_ledger(snapshot: ClusterSnapshot, finishing: list[list[int]],
                            before_each=None) -> Ledger:
    """Cycles on one ledger kept as the service keeps it, some running workloads finishing
    before each (`finishing`: which, per cycle), each deciding as on a ledger built afresh;
    `before_each(snapshot, ledger)` is called as each cycle is about to run."""
    ledger = Ledger.of(snapshot)
    workloads = {w.id: w for w in snapshot.workloads}
    allocations = {(a.workload_id, a.pod): a for a in snapshot.allocations}
    for finish in [[], *finishing]:
        for i in finish:  # some running workloads finish
            running = sorted({wid for wid, _ in allocations})
            if not running:
                break
            wid = running[i % len(running)]
            for key in [k for k in allocations if k[0] == wid]:
                del allocations[key]
                ledger.release(*key)
            del workloads[wid]
        snapshot = replace(snapshot, workloads=tuple(workloads.values()),
                           allocations=tuple(allocations[k] for k, _ in ledger.entries()))
        if before_each is not None:
            before_each(snapshot, ledger)
        kept = decide(snapshot, ledger)
        assert kept == decide(snapshot)
        settle(kept, workloads, allocations, ledger, T0)
        snapshot = replace(snapshot, nominated=kept.nominated)
    return ledger


def settle(result, workloads: dict, allocations: dict, ledger, now) -> None:
    """What lifecycle makes of a cycle's decisions, on the test's own state: evicted pods
    wait again, bound ones run (started at `now`); the ledger is told of both."""
    for e in result.evictions:
        w = workloads[e.workload_id]
        pods = e.pods or tuple(p for wid, p in allocations if wid == w.id)
        for pod in pods:
            if allocations.pop((w.id, pod), None) is not None:
                ledger.release(w.id, pod)
        workloads[w.id] = replace(w, waiting_pods=tuple(sorted(
            {*w.waiting_pods, *pods}, key=natural)))
    for p in result.placements:
        if p.pipelined:
            continue
        w = workloads[p.workload_id]
        for pod in p.pods:
            if (w.id, pod.pod) in allocations:
                continue
            a = Allocation(w.id, pod.pod, pod.node, pod.gpu_devices, portion=pod.portion)
            allocations[(w.id, pod.pod)] = a
            ledger.hold(a, w.project, w.preemptible)
        bound = {pod.pod for pod in p.pods}
        workloads[w.id] = replace(w, started_at=w.started_at or now, waiting_pods=tuple(
            x for x in w.waiting_pods if x not in bound))
