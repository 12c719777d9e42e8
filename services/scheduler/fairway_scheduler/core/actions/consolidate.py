"""The consolidate action: a whole-GPU gang that the pool's free devices could hold but for
fragmentation. Preemptible workloads on the nodes it needs are moved, each placed again in the
same decision or nothing moves; at most `max_pods_moved` pods per cycle; not in pools that
spread.
"""

from fairway_scheduler.core import reasons
from fairway_scheduler.core.actions.allocate import quota_refusal
from fairway_scheduler.core.actions.solver import Movable, Solver, Unit, label
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
    moved_ids: set[str] = set()
    budget = solver.moves_left
    # A node whose free devices and movable workloads' devices together fall short of `d` is
    # never cleared; moving a workload off one node frees as many devices on its others as
    # it takes from their movable count, so the sum stays what it was: skip them at once.
    nodes = [n for n in pool.gpu_nodes if n.gpus >= d and n.whole < d
             and n.idx in movable and n.whole + movable[n.idx].full >= d]
    nodes.sort(key=lambda n: (d - n.whole, n.idx))
    for node in nodes:
        if pool.whole_fit_count(d) >= gang:
            break
        need = d - node.whole
        chosen = []
        for unit, full in movable[node.idx].units:
            if need <= 0:
                break
            if unit.workload.id not in moved_ids:
                chosen.append(unit)
                need -= full
        if need > 0 or sum(len(u.holds) for u in chosen) > budget:
            continue
        for unit in chosen:
            for hold in unit.holds:
                statement.evict(hold)
            moved.append(unit)
            moved_ids.add(unit.workload.id)
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


def _movers(solver: Solver, pool: str) -> dict[int, Movable]:
    """Whole-GPU preemptible workloads running in the pool, by the nodes they are on."""
    out: dict[int, Movable] = {}
    keys: dict[int, list[tuple[int, int]]] = {}
    for wid, holds in solver.holds.items():
        w = holds[0].workload
        if (holds[0].node.pool != pool or not w.preemptible or wid in solver.evicted
                or w.gpu_portion is not None or w.gpu_memory_mib is not None
                or solver.protected(w, pool) or len(holds) < w.min_pods):
            continue
        unit = Unit(w, list(holds), False)
        for idx in {h.node.idx for h in holds}:
            here = out.get(idx)
            if here is None:
                here = out[idx] = Movable()
                keys[idx] = []
            full = sum(len(h.devices) for h in holds if h.node.idx == idx and h.milli == FULL)
            here.units.append((unit, full))
            here.full += full
            keys[idx].append((len(holds), -sum(h.gpu for h in holds if h.node.idx == idx)))
    for idx, here in out.items():
        order = keys[idx]
        # stable: units that tie keep the order they run in
        here.units = [here.units[i] for i in sorted(range(len(order)), key=order.__getitem__)]
    return out
