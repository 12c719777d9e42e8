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

from fairway_scheduler.core import Allocation, Node, Workload, decide
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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alike(), st.lists(ops, min_size=1, max_size=5))
def test_the_kept_runs_are_those_found_afresh(snapshot, cycles):
    ledger = Ledger.of(snapshot)
    workloads = {w.id: w for w in snapshot.workloads}
    allocations = {(a.workload_id, a.pod): a for a in snapshot.allocations}
    nodes = list(snapshot.nodes)
    extra = Node("c0", "c", True, 8, None, 40960, cpu_millis=16000, memory_mib=65536)
    ledger.put_node(extra)
    arrived = 0
    for changes in [[], *cycles]:
        for op, i in changes:
            waiting = sorted(wid for wid, w in workloads.items()
                             if w.waiting_pods and not any(k[0] == wid for k in allocations))
            running = sorted({wid for wid, _ in allocations})
            if op == "arrive" and workloads:  # asks as another workload does
                like = workloads[sorted(workloads)[i % len(workloads)]]
                wid = f"n{arrived}"
                arrived += 1
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
            elif op == "hold" and waiting:  # a pod held, its workload's object as it was
                w = workloads[waiting[i % len(waiting)]]
                where = [n.name for n in nodes] + ["unknown"]  # a node the ledger never knew
                a = Allocation(w.id, w.waiting_pods[0], where[i % len(where)])
                allocations[(w.id, a.pod)] = a
                ledger.hold(a, w.project, w.preemptible)
            elif op == "release" and running:  # its pods released, its object as it was
                wid = running[i % len(running)]
                for key in [k for k in allocations if k[0] == wid]:
                    del allocations[key]
                    ledger.release(*key)
            elif op == "node":
                n = i % len(nodes)
                nodes[n] = replace(nodes[n], ready=not nodes[n].ready)
            elif op == "pool":
                if extra in nodes:  # gone, with what ran there
                    nodes.remove(extra)
                    for key in [k for k, a in allocations.items() if a.node == extra.name]:
                        del allocations[key]
                        ledger.release(*key)
                else:
                    nodes.append(extra)
        snapshot = replace(snapshot, nodes=tuple(nodes), workloads=tuple(workloads.values()),
                           allocations=tuple(allocations[k] for k, _ in ledger.entries()))
        session = Session(snapshot, ledger)
        Allocate(session).run()
        solver = Solver(session)
        assert runs_kept(solver) == runs_afresh(solver)
        kept = decide(snapshot, ledger)
        assert kept == decide(snapshot)
        settle(kept, workloads, allocations, ledger, snapshot.now)
        snapshot = replace(snapshot, nominated=kept.nominated)
