"""One scheduling cycle: the actions in order, on one session.

`allocate` places what fits on idle capacity; then, when anything could need a disruption,
`consolidate`, `reclaim` and `preempt` (each as the settings allow) try every workload whose
gang still waits, fairest queue first, in each pool it may use; last, `stale_gang` evicts gangs
that ran below their minimum for too long. The least disruptive action goes first: a workload
placed by one is not tried by the next.
"""

import bisect
import gc
import heapq
from collections.abc import Callable

from fairway_scheduler.core.actions.allocate import Allocate
from fairway_scheduler.core.actions.consolidate import consolidate
from fairway_scheduler.core.actions.preempt import preempt
from fairway_scheduler.core.actions.reclaim import may_reclaim, reclaim
from fairway_scheduler.core.actions.solver import Solver, preemptor_class
from fairway_scheduler.core.actions.stale_gang import evict_stale_gangs
from fairway_scheduler.core.framework import Request, Session, pod_request
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.model import ClusterSnapshot, CycleResult, DisruptionSettings, Workload
from fairway_scheduler.core.nodes import natural
from fairway_scheduler.core.queues import GPU

Action = Callable[[Solver, Workload, str], bool]


def decide(snapshot: ClusterSnapshot, ledger: Ledger | None = None) -> CycleResult:
    """One whole cycle: allocate, then consolidate, reclaim, preempt and stale-gang eviction.

    `ledger`: what running pods hold, kept by a caller that runs cycle after cycle; it stands
    in for `snapshot.allocations` (which are then not read) and is not changed.

    The garbage collector waits while the cycle runs: a cycle makes a few objects per node,
    waiting workload and running pod, all of them freed by reference counting when it ends;
    collected while alive, they would be moved to the oldest generation, whose full
    collections (every object of the cluster's state: seconds at 100,000 running pods) would
    then come every cycle or two. What a cycle leaves in reference cycles is collected after
    it, with the youngest generation."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _decide(snapshot, ledger)
    finally:
        if paused:
            gc.enable()


def _decide(snapshot: ClusterSnapshot, ledger: Ledger | None) -> CycleResult:
    session = Session(snapshot, ledger)
    Allocate(session).run()
    if _disruption_possible(session):
        solver = Solver(session)
        for action in disruptive_actions(snapshot.disruption):
            _disrupt(solver, action)
        if snapshot.any_below_min():
            evict_stale_gangs(solver)  # else no gang runs below its minimum: nothing to do
    return session.result()


def _disrupt(solver: Solver, action: Action) -> None:
    """The action tried for every workload that waits, in the solver's order
    (`Solver.preemptors`), in each of its pools until one takes it.

    Most of them (tens of thousands at KAI's scale) are refused as one that asks alike was
    just before: the action reads of a workload only its request, project, priority,
    preemptibility, minimum and how many pods wait (`solver.preemptor_class`), besides the
    cycle's state, which only a kept statement changes (`Session.commits`). So a workload that
    holds nothing and asks as one refused in the same pool since the last kept statement is
    refused too, and is not asked about; and a run of such workloads in the same pools
    (`Solver.preemptor_runs`) is not even looked at again until a statement is kept, when it
    goes on from its first workload after the one placed. The workloads asked about, and in
    which order, are those the whole walk would ask about."""
    session = solver.session
    runs, singles = solver.preemptor_runs()
    heap: list[tuple[tuple, int, int]] = [(key, -1 - i, 0) for i, (key, _) in enumerate(singles)]
    heap += [(run.key(0), i, 0) for i, run in enumerate(runs)]
    heapq.heapify(heap)
    asleep: list[tuple[int, int]] = []  # (run, its next workload) until a statement is kept
    refused: dict[tuple, int] = {}  # (class, pool) -> `session.commits` when refused
    while heap:
        key, i, j = heapq.heappop(heap)
        if i < 0:
            workload = singles[-1 - i][1]
            cls, pools = preemptor_class(session, solver, workload), session.target_pools(workload)
        else:  # a run's: its class and pools (it holds nothing until it is placed)
            workload, cls, pools = runs[i].members[j], runs[i].cls, runs[i].pools
        before = session.commits
        for pool in pools:
            if cls is not None and refused.get((cls, pool)) == session.commits:
                continue
            kept = session.commits
            if action(solver, workload, pool):
                break
            if cls is not None and session.commits == kept:
                refused[(cls, pool)] = kept
        if i >= 0 and j + 1 < len(runs[i].members):  # the run's next workload
            if session.commits == before:
                # refused in every pool of the run since the last kept statement: so are the
                # rest of it, until the next one
                asleep.append((i, j + 1))
            else:
                heapq.heappush(heap, (runs[i].key(j + 1), i, j + 1))
        if session.commits != before:
            for r, at in asleep:  # woken at their first workload after this one
                run = runs[r]
                nxt = bisect.bisect_right(range(len(run.members)), key, lo=at, key=run.key)
                if nxt < len(run.members):
                    heapq.heappush(heap, (run.key(nxt), r, nxt))
            asleep.clear()


def disruptive_actions(settings: DisruptionSettings) -> list[Action]:
    """The disruptive actions the settings allow, least disruptive first."""
    order = ((settings.consolidate, consolidate), (settings.reclaim, reclaim),
             (settings.preempt, preempt))
    return [action for enabled, action in order if enabled]


def _disruption_possible(session: Session) -> bool:
    """Most cycles have nothing to disrupt for: skip indexing every running pod then. A gang
    whose pods do not all exist yet is nothing to disrupt for either (no room made would
    start it); bursts of new workloads are mostly that, while their pods are being created.
    Pods above a running workload's minimum are, when its project could reclaim for one more
    (it stays within its fair share or deserved quota) or holds lower-priority work to preempt."""
    settings = session.snapshot.disruption
    elastic: list[Workload] = []
    for w in session.waiting:  # a gang that could start is the usual answer: looked at first
        if w.id in session.unschedulable:
            continue
        held = session.held.get(w.id, 0)
        if held < w.min_pods:
            if len(w.waiting_pods) + held >= w.min_pods:
                return True
        elif held:
            elastic.append(w)
    if session.snapshot.any_evicting_or_below_min():
        return True
    if not elastic:
        return False
    lowest: dict[str, int] = {}
    if settings.preempt:
        for w in session.snapshot.workloads:
            if session.held.get(w.id, 0) and w.preemptible:
                lowest[w.project] = min(lowest.get(w.project, w.priority), w.priority)
    for w in elastic:
        pool = session.held_pool.get(w.id)
        pool_nodes = session.pools.get(pool) if pool else None
        if pool is None or pool_nodes is None:
            continue
        if w.project in lowest and lowest[w.project] < w.priority:
            return True
        need = _next_pod_request(session, w).vector(pool_nodes.max_dev_memory)[GPU]
        if settings.reclaim and need and may_reclaim(session.queues.project(w.project, pool),
                                                     need):
            return True
    return False


def _next_pod_request(session: Session, workload: Workload) -> Request:
    """What the workload's next pod asks for: the master's own request when the master, sized
    apart, still waits (its name sorts first), else a worker's."""
    request = session.requests[workload.id]
    if request.master is not None and workload.waiting_pods:
        return pod_request(request, workload, min(workload.waiting_pods, key=natural))
    return request
