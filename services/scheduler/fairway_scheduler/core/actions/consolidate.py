"""The consolidate action: a whole-GPU gang that the pool's free devices could hold but for
fragmentation. Preemptible workloads on the nodes it needs are moved, each placed again in the
same decision or nothing moves; at most `max_pods_moved` pods per cycle; not in pools that
spread.
"""

from fairway_scheduler.core import reasons
from fairway_scheduler.core.actions.allocate import quota_refusal
from fairway_scheduler.core.actions.solver import Solver, Unit, label
from fairway_scheduler.core.framework import Request, Statement, request_of, too_large
from fairway_scheduler.core.model import Workload
from fairway_scheduler.core.nodes import FULL, PoolNodes


def consolidate(solver: Solver, workload: Workload, pool_name: str) -> bool:
    """Move running workloads aside for `workload`'s gang in `pool_name`; True when placed."""
    session = solver.session
    pool = session.pools.get(pool_name)
    if pool is None or not pool.gpu_nodes or pool.gpu_strategy != "binpack":
        return False
    request = session.requests[workload.id]
    gang = max(1, workload.min_pods - session.held[workload.id])
    waiting = solver.waiting[workload.id]
    if (request.fraction or not request.devices or len(waiting) < gang
            or solver.moves_left <= 0 or not _fragmented(solver, workload, pool, gang)):
        return False
    shape = ("consolidate", workload.project, pool_name, request.devices, gang)
    if shape in solver.failed:
        return False
    statement = Statement(session, pool)
    moved = _make_room(solver, statement, pool, request.devices, gang)
    if not (moved and _place(solver, statement, workload, request, gang, moved)):
        statement.rollback()
        solver.failed.add(shape)
        return False
    statement.commit()
    del waiting[:gang]
    for unit in moved:
        # It is evicted from its old place and restarts on the new one: the same pods.
        solver.record_eviction(unit, "consolidate", workload,
                               f"moved to other nodes of pool {pool_name} to make room for "
                               f"{label(workload)} ({reasons.pods_with(gang, request)} "
                               "together); it restarts there at once")
        solver.holds.pop(unit.workload.id, None)
    solver.moves_left -= sum(len(u.holds) for u in moved)
    solver.waiting_for_preemption(workload, pool_name, moved)
    return True


def _fragmented(solver: Solver, workload: Workload, pool: PoolNodes, gang: int) -> bool:
    """The queue may take the gang and the pool's free devices would hold it, but no set of
    nodes has them whole."""
    request = solver.session.requests[workload.id]
    d = request.devices
    queue = solver.session.queues.project(workload.project, pool.name)
    if quota_refusal(workload, queue, request.vector(pool.max_dev_memory), gang) is not None:
        return False
    free = sum(b * pool.counts[b] for b in range(1, pool.max_devices + 1))
    # not fragmentation: either no room at all, or room already
    return not (free < gang * d or pool.whole_fit_count(d) >= gang or too_large(pool, request))


def _make_room(solver: Solver, statement: Statement, pool: PoolNodes, d: int, gang: int
               ) -> list[Unit]:
    """Evict movable workloads from the nodes closest to `d` free devices, node by node,
    until `gang` pods of `d` devices fit or the budget of moves is spent."""
    movable = solver.movers.get(pool.name)
    if movable is None:
        movable = solver.movers[pool.name] = _movers(solver, pool.name)
    moved: list[Unit] = []
    budget = solver.moves_left
    for node in sorted((n for n in pool.gpu_nodes if n.gpus >= d and n.whole < d),
                       key=lambda n: (d - n.whole, n.idx)):
        if pool.whole_fit_count(d) >= gang:
            break
        on_node = [u for u in movable.get(node.idx, []) if u.workload.id not in
                   {m.workload.id for m in moved}]
        on_node.sort(key=lambda u: (len(u.holds), -sum(h.gpu for h in u.holds
                                                       if h.node is node)))
        need = d - node.whole
        chosen = []
        for unit in on_node:
            if need <= 0:
                break
            chosen.append(unit)
            need -= sum(len(h.devices) for h in unit.holds if h.node is node
                        and h.milli == FULL)
        if need > 0 or sum(len(u.holds) for u in chosen) > budget:
            continue
        for unit in chosen:
            for hold in unit.holds:
                statement.evict(hold)
            moved.append(unit)
            budget -= len(unit.holds)
    return moved


def _place(solver: Solver, statement: Statement, workload: Workload, request: Request,
           gang: int, moved: list[Unit]) -> bool:
    """The gang placed, then every moved workload placed again in the same pool."""
    pool = statement.pool
    assert pool is not None
    session = solver.session
    if pool.whole_fit_count(request.devices) < gang or not all(
            statement.place(pod, request) is not None
            for pod in solver.waiting[workload.id][:gang]):
        return False
    statement.pipeline(workload)
    for unit in moved:
        mover = unit.workload
        again = session.requests.setdefault(mover.id, request_of(mover))
        if not all(statement.place(h.pod, again) is not None for h in unit.holds):
            return False
        statement.pipeline(mover, moved=True)
    return True


def _movers(solver: Solver, pool: str) -> dict[int, list[Unit]]:
    """Whole-GPU preemptible workloads running in the pool, by the nodes they are on."""
    out: dict[int, list[Unit]] = {}
    for wid, holds in solver.holds.items():
        w = holds[0].workload
        if (holds[0].node.pool != pool or not w.preemptible or wid in solver.evicted
                or w.gpu_portion is not None or w.gpu_memory_mib is not None
                or solver.protected(w, pool) or len(holds) < w.min_pods):
            continue
        unit = Unit(w, list(holds), False)
        for idx in {h.node.idx for h in holds}:
            out.setdefault(idx, []).append(unit)
    return out
