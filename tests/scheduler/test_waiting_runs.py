"""The disruptive walk's runs of waiting workloads, kept between cycles in the ledger
(`runs.WaitingRuns`), against the runs found afresh as the solver found them every cycle before
(every waiting workload's `preemptor_class` and pools): cycle after cycle on one ledger, with
workloads that arrive, leave, are made again or changed, pods bound and evicted as decided,
pods held or released without the workload's object changing, nodes made ready or not and a
pool that comes and goes."""

from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairway_scheduler.core import (
    Allocation,
    ClusterSnapshot,
    CycleResult,
    Node,
    Workload,
    decide,
)
from fairway_scheduler.core.actions.allocate import Allocate
from fairway_scheduler.core.actions.solver import Solver, preemptor_class
from fairway_scheduler.core.framework import Session
from fairway_scheduler.core.ledger import Ledger
from tests.scheduler.test_disruption_walk import alike
from tests.scheduler.test_hold_index import settle


def runs_afresh(solver: Solver) -> tuple[set, set]:
    """The runs (class, pools, members by identity) and singles as found before they were
    kept: every waiting workload read."""
    session = solver.session
    runs: dict[tuple, list[Workload]] = {}
    singles = set()
    for w in session.waiting:
        if w.id in session.unschedulable:
            continue
        cls = preemptor_class(session, solver, w)
        if cls is None:
            if solver.waiting[w.id]:
                singles.add(id(w))
            continue
        runs.setdefault((cls, session.target_pools(w)), []).append(w)
    return ({(cls, pools, tuple(map(id, sorted(ms, key=lambda m: (m.submitted_at, m.id)))))
             for (cls, pools), ms in runs.items()}, singles)


def runs_kept(solver: Solver) -> tuple[set, set]:
    runs, singles = solver.preemptor_runs()
    return ({(r.cls, r.pools, tuple(map(id, r.members))) for r in runs},
            {id(w) for _, w in singles})


ops = st.lists(st.tuples(st.sampled_from(["arrive", "leave", "again", "change", "hold",
                                          "release", "node", "pool"]),
                         st.integers(0, 1000)), max_size=8)


class Changes:
    """What the random-cycle tests of kept structures change between cycles, on one ledger:
    workloads that arrive (asking as another does), leave, are made again (the same content,
    another object) or changed; pods held or released without the workload's object changing
    (held on a node the ledger never knew, too); nodes made ready or not; a pool (`c`, one
    node) that comes and goes, with what ran there; and, where the cycle's time counts, a
    workload preferring a pool that is not there, whose grace then runs out."""

    def __init__(self, snapshot: ClusterSnapshot, *, with_pool: bool = False):
        self.snapshot = snapshot
        self.ledger = Ledger.of(snapshot)
        self.workloads = {w.id: w for w in snapshot.workloads}
        self.allocations = {(a.workload_id, a.pod): a for a in snapshot.allocations}
        self.nodes = list(snapshot.nodes)
        self.extra = Node("c0", "c", True, 8, None, 40960, cpu_millis=16000, memory_mib=65536)
        self.ledger.put_node(self.extra)
        if with_pool:
            self.nodes.append(self.extra)
        self.arrived = 0

    def apply(self, op: str, i: int) -> None:
        workloads, allocations, ledger, nodes = (self.workloads, self.allocations, self.ledger,
                                                 self.nodes)
        waiting = sorted(wid for wid, w in workloads.items()
                         if w.waiting_pods and not any(k[0] == wid for k in allocations))
        running = sorted({wid for wid, _ in allocations})
        if op == "arrive" and workloads:
            like = workloads[sorted(workloads)[i % len(workloads)]]
            wid = f"n{self.arrived}"
            self.arrived += 1
            workloads[wid] = replace(
                like, id=wid, started_at=None, evicting_pods=(),
                submitted_at=like.submitted_at + timedelta(seconds=i % 3),
                waiting_pods=tuple(f"{wid}-{j}" for j in range(like.pods)))
        elif op == "leave" and waiting:
            del workloads[waiting[i % len(waiting)]]
        elif op == "again" and workloads:
            w = workloads[sorted(workloads)[i % len(workloads)]]
            workloads[w.id] = replace(w)
        elif op == "change" and waiting:
            w = workloads[waiting[i % len(waiting)]]
            workloads[w.id] = (replace(w, priority=w.priority + 50) if i % 2 else
                               replace(w, preemptible=not w.preemptible))
        elif op == "missing" and waiting:
            w = workloads[waiting[i % len(waiting)]]
            workloads[w.id] = replace(w, node_pools=("gone",),
                                      submitted_at=self.snapshot.now - timedelta(seconds=30))
        elif op == "time":  # past a missing pool's grace: unschedulable, the same object
            self.snapshot = replace(self.snapshot,
                                    now=self.snapshot.now + timedelta(seconds=45))
        elif op == "hold" and waiting:
            w = workloads[waiting[i % len(waiting)]]
            where = [n.name for n in nodes] + ["unknown"]
            a = Allocation(w.id, w.waiting_pods[0], where[i % len(where)])
            allocations[(w.id, a.pod)] = a
            ledger.hold(a, w.project, w.preemptible)
        elif op == "release" and running:
            wid = running[i % len(running)]
            for key in [k for k in allocations if k[0] == wid]:
                del allocations[key]
                ledger.release(*key)
        elif op == "node":
            n = i % len(nodes)
            nodes[n] = replace(nodes[n], ready=not nodes[n].ready)
        elif op == "pool":
            if self.extra in nodes:
                nodes.remove(self.extra)
                for key in [k for k, a in allocations.items() if a.node == self.extra.name]:
                    del allocations[key]
                    ledger.release(*key)
            else:
                nodes.append(self.extra)

    def cycle_snapshot(self) -> ClusterSnapshot:
        """The next cycle's snapshot, as changed."""
        self.snapshot = replace(self.snapshot, nodes=tuple(self.nodes),
                                workloads=tuple(self.workloads.values()),
                                allocations=tuple(self.allocations[k]
                                                  for k, _ in self.ledger.entries()))
        return self.snapshot

    def settle(self, result: CycleResult) -> None:
        """The cycle's decisions carried out (`test_hold_index.settle`)."""
        settle(result, self.workloads, self.allocations, self.ledger, self.snapshot.now)
        self.snapshot = replace(self.snapshot, nominated=result.nominated)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alike(), st.lists(ops, min_size=1, max_size=5))
def test_the_kept_runs_are_those_found_afresh(snapshot, cycles):
    changes = Changes(snapshot)
    for steps in [[], *cycles]:
        for op, i in steps:
            changes.apply(op, i)
        snapshot = changes.cycle_snapshot()
        session = Session(snapshot, changes.ledger)
        Allocate(session).run()
        solver = Solver(session)
        assert runs_kept(solver) == runs_afresh(solver)
        kept = decide(snapshot, changes.ledger)
        assert kept == decide(snapshot)
        changes.settle(kept)
