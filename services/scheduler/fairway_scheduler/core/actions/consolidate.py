"""The consolidate action: a waiting gang (whole GPUs or fractions) that the pool's free room
could hold but for fragmentation. Preemptible pods on the nodes it needs are moved aside, node
by node (the node that needs the fewest pods moved first), until the gang fits; pods whose room
it did not need stay where they are (a gang keeps its pods on the nodes not cleared); every
moved pod is placed again in the same decision, fractions packed onto the device with the
least free room that holds them, or nothing moves. At most `max_pods_moved` pods per cycle;
not in pools that spread. A workload placed this way is not disrupted for again in the cycle.
"""

import heapq
from collections.abc import Iterable

from fairway_scheduler.core import reasons
from fairway_scheduler.core.actions.allocate import quota_refusal
from fairway_scheduler.core.actions.solver import Solver, Unit, label
from fairway_scheduler.core.framework import (
    Hold,
    Request,
    Statement,
    gang_need,
    sized_apart,
    too_large,
)
from fairway_scheduler.core.model import Workload
from fairway_scheduler.core.nodes import FULL, NodeState, PoolNodes, milli_of, natural

# How many nodes, the closest to holding a pod first, one step of room-making weighs.
_NODES_WEIGHED = 16


def consolidate(solver: Solver, workload: Workload, pool_name: str) -> bool:
    """Move running pods aside for `workload`'s gang in `pool_name`; True when placed."""
    session = solver.session
    pool = session.pools.get(pool_name)
    if pool is None or not pool.gpu_nodes or pool.gpu_strategy != "binpack":
        return False
    request = session.requests[workload.id]
    gang = max(1, workload.min_pods - session.held.get(workload.id, 0))
    waiting = solver.waiting[workload.id]
    if (not request.devices or len(waiting) < gang or solver.moves_left <= 0
            or not _fragmented(solver, workload, pool, gang)):
        return False
    # A shape of gang that found no room in the pool finds none again until something in the
    # pool changes and is kept (attempts rolled back leave its room as it was), whatever its
    # project (unless a limit of its project or department could refuse a moved pod of its
    # own queue).
    queue = session.queues.project(workload.project, pool_name)
    limited = any(q.limit[r] != -1 for q in queue.chain() for r in range(3))
    apart = sized_apart(request, workload, waiting[:gang])
    shape = ("consolidate", pool_name, request, gang, workload.project if limited else None,
             apart)
    if (*shape, pool.settled_version()) in solver.failed:
        return False
    statement = Statement(session, pool)
    moved = _make_room(solver, statement, workload, gang)
    went = None if moved is None else _place_again(solver, statement, moved)
    if moved is None or went is None:
        statement.rollback()
        solver.failed.add((*shape, pool.settled_version()))
        return False
    statement.commit()
    waiting.clear()  # its other pods wait for the next cycle: nothing else is evicted for it
    solver.placed_more(workload.id)
    for unit in moved:
        kept = len(solver.holds.get(unit.workload.id, ())) - len(unit.holds)
        mover = session.requests[unit.workload.id]
        mover_apart = sized_apart(mover, unit.workload, [h.pod for h in unit.holds])
        moves = ", ".join(f"{h.pod} from {_at(h.node_name, h.devices)} to {went[h.pod]}"
                          for h in unit.holds)
        n = len(unit.holds)
        solver.record_eviction(unit, "consolidate", workload, (
            f"moved within pool {pool_name} to make room for {label(workload)} "
            f"({reasons.pods_with(gang, request, master=apart)}"
            f"{' together' if gang > 1 else ''}): "
            f"{reasons.pods_with(n, mover, master=mover_apart)} "
            f"restart{'s' if n == 1 else ''} at once ({moves})"
            + _kept(kept)))
        if unit.workload.id in solver.holds:  # moved: no victim any more in this cycle
            solver.touch(unit.workload.id)
            solver.stays[unit.workload.id] = solver.holds.pop(unit.workload.id)
    solver.moves_left -= sum(len(u.holds) for u in moved)
    solver.waiting_for_preemption(workload, pool_name, moved)
    return True


def _fragmented(solver: Solver, workload: Workload, pool: PoolNodes, gang: int) -> bool:
    """The queue may take the gang and the pool's free room would hold it if it were packed,
    but it does not fit as the room lies."""
    request = solver.session.requests[workload.id]
    queue = solver.session.queues.project(workload.project, pool.name)
    pods = solver.waiting[workload.id][:gang]
    need = gang_need(request, workload, pods, pool.max_dev_memory)
    if quota_refusal(workload, queue, need, 1) is not None or too_large(pool, request):
        return False
    if pool.free_total < need[0]:
        return False  # no room at all: not fragmentation
    # a master sized apart needs no slot of the workers' size (its own is found on placing)
    workers = gang - 1 if sized_apart(request, workload, pods) else gang
    return request.fraction or pool.whole_fit_count(request.devices) < workers


def _make_room(solver: Solver, statement: Statement, workload: Workload, gang: int
               ) -> list[Unit] | None:
    """Evict movable pods node by node until the gang is placed (on the statement), then take
    back every evicted pod whose room it did not use. The moved pods per workload (with the
    holds they left), or None when the gang found no room within the budget of moves."""
    pool = statement.pool
    assert pool is not None
    request = solver.session.requests[workload.id]
    movable = _movable(solver, pool.name)
    evicted: list[Hold] = []
    gone: set[int] = set()
    while not solver.try_place(statement, workload, request, gang):
        step = _next_node(pool, request, movable, gone, workload.id,
                          solver.moves_left - len(evicted))
        if step is None:
            return None
        for hold in step:
            statement.evict(hold)
            evicted.append(hold)
            gone.add(id(hold))
    statement.pipeline(workload)
    # newest first: the pods of the node that made it fit are the last ones tried
    for hold in reversed(evicted):
        if solver.take_back(statement, Unit(hold.workload, [hold], False)):
            evicted.remove(hold)
    by_workload: dict[str, list[Hold]] = {}
    for hold in evicted:
        by_workload.setdefault(hold.workload.id, []).append(hold)
    return [Unit(holds[0].workload, sorted(holds, key=lambda h: natural(h.pod)), False)
            for holds in by_workload.values()]


def _place_again(solver: Solver, statement: Statement, moved: list[Unit]
                 ) -> dict[str, str] | None:
    """Every moved workload's moved pods placed again in the pool (fractions onto the fullest
    device that holds them): where each pod went, or None when one found no room."""
    went: dict[str, str] = {}
    for unit in moved:
        if not solver.place_again(statement, unit):
            return None
        for pod in solver.session.placements[-1].pods:
            went[pod.pod] = _at(pod.node, pod.gpu_devices)
    return went


def _movable(solver: Solver, pool: str) -> dict[int, list[Hold]]:
    """The pods consolidation may move, by the nodes they are on: GPU pods of preemptible
    workloads running their whole gang, outside their minimum guaranteed runtime. From the
    index kept between cycles (`Solver.movable`) unless the pool has such a runtime."""
    movable = solver.movers.get(pool)
    if movable is None:
        movable = solver.movable(pool)
        if movable is None:
            movable = movable_afresh(solver, pool)
        solver.movers[pool] = movable
    return movable


def movable_afresh(solver: Solver, pool: str) -> dict[int, list[Hold]]:
    """`_movable` from every workload's holds."""
    movable: dict[int, list[Hold]] = {}
    for wid, holds in solver.holds.items():
        w = holds[0].workload
        if (holds[0].pool != pool or not w.preemptible or wid in solver.evicted
                or solver.protected(w, pool) or len(holds) < w.min_pods):
            continue
        for hold in holds:
            if hold.devices:
                movable.setdefault(hold.idx, []).append(hold)
    return movable


def _next_node(pool: PoolNodes, request: Request, movable: dict[int, list[Hold]],
               gone: set[int], preemptor: str, budget: int) -> list[Hold] | None:
    """The pods to move off the node where one pod of the request fits after the fewest
    moves (then the fewest milli-GPUs moved, then natural order), within `budget`; None when
    no node can be cleared so."""
    devices, node_type, by_idx = request.devices, request.node_type, pool.by_idx
    whole = not request.fraction
    portion = request.portion if request.fraction and devices == 1 else None
    indexed = portion is not None
    ranked = (_closest_for_fraction(pool, portion, movable, node_type) if portion is not None
              else [])
    for idx in () if indexed else movable:  # thousands of nodes: a few comparisons each
        node = by_idx.get(idx)
        if node is None or node.gpus < devices or (
                node_type is not None and node.node_type != node_type):
            continue
        if whole:
            if node.whole < devices:
                ranked.append(((devices - node.whole) * FULL, idx, node))
            continue
        deficit = _deficit(node, request)
        if deficit:  # else it holds the pod already, but for CPU or memory: moving won't do
            ranked.append((deficit, idx, node))
    best: tuple[tuple[int, int, int], list[Hold]] | None = None
    # (deficit, idx) decide the order: idx is unique, nodes are never compared
    for _, _, node in heapq.nsmallest(_NODES_WEIGHED, ranked):
        holds = [h for h in movable[node.idx]
                 if id(h) not in gone and h.workload.id != preemptor]
        chosen = _to_move(node, request, holds)
        if not chosen or len(chosen) > budget:
            continue
        cost = (len(chosen), sum(h.gpu for h in chosen), node.idx)
        if best is None or cost < best[0]:
            best = (cost, chosen)
    return best[1] if best else None


def _closest_for_fraction(pool: PoolNodes, milli: int, movable: dict[int, list[Hold]],
                          node_type: str | None) -> list[tuple[int, int, NodeState]]:
    """For one pod of a fraction `milli`: the nodes `_NODES_WEIGHED` would take, closest to
    holding it first, from the pool's index of partly used devices rather than every node.
    A node's deficit is `milli` less the most a device of it has free (none when a device is
    whole or has that much free); walked from the most free down, a bucket at a time (every
    later one is further), then nodes with every device full. Empty when no node has one."""
    by_idx = pool.by_idx
    out: list[tuple[int, int, NodeState]] = []
    seen: set[int] = set()
    for free in sorted((f for f in pool.partial if f < milli), reverse=True):
        for idx in pool.partial[free]:
            if idx in seen or idx not in movable:
                continue
            seen.add(idx)
            node = by_idx.get(idx)
            if (node is None or node.whole or max(node.partial_free) != free
                    or (node_type is not None and node.node_type != node_type)):
                continue  # its most free device is in a bucket walked before, or whole
            out.append((milli - free, idx, node))
        if len(out) >= _NODES_WEIGHED:
            return out
    for idx in movable:
        node = by_idx.get(idx)
        if (idx not in seen and node is not None and node.gpus and not node.whole
                and not node.partial_free
                and (node_type is None or node.node_type == node_type)):
            out.append((milli, idx, node))
    return out


def _deficit(node: NodeState, request: Request) -> int:
    """Milli-GPUs to free on the node before one pod of the request fits (a rough order)."""
    if not request.fraction:
        return max(0, request.devices - node.whole) * FULL
    milli = milli_of(node, request.portion, request.memory)
    if milli is None:
        return FULL * (request.devices + 1)
    if request.devices == 1:
        return max(0, min(node.used) + milli - FULL)
    least = sorted(node.used)[:request.devices]
    return sum(max(0, u + milli - FULL) for u in least)


def _to_move(node: NodeState, request: Request, holds: list[Hold]) -> list[Hold]:
    """The fewest movable pods whose leaving lets one pod of the request fit on the node;
    empty when none do (or it fits already)."""
    on: dict[int, list[Hold]] = {}
    for hold in holds:
        for d in hold.devices:
            on.setdefault(d, []).append(hold)
    options: list[tuple[int, int, int, list[Hold]]] = []  # (pods, milli, device, pods)
    milli = FULL if not request.fraction else milli_of(node, request.portion, request.memory)
    if milli is None:
        return []
    for d, used in enumerate(node.used):
        need = used + milli - FULL
        if need <= 0:
            options.append((0, 0, d, []))
            continue
        freeing = _freeing(on.get(d, []), need)
        if freeing is not None:
            options.append((len(freeing), sum(h.milli for h in freeing), d, freeing))
    if len(options) < request.devices:
        return []
    options.sort(key=lambda o: o[:3])
    chosen: dict[int, Hold] = {}
    for option in options[:request.devices]:
        for hold in option[3]:
            chosen[id(hold)] = hold
    return list(chosen.values())


def _freeing(holds: list[Hold], need: int) -> list[Hold] | None:
    """The fewest of `holds` (one pod: the smallest that is enough) freeing `need` milli-GPUs
    of one device; None when all of them are not enough."""
    enough = [h for h in holds if h.milli >= need]
    if enough:
        return [min(enough, key=lambda h: (h.milli, len(h.devices), natural(h.pod)))]
    out: list[Hold] = []
    for hold in sorted(holds, key=lambda h: (-h.milli, natural(h.pod))):
        out.append(hold)
        need -= hold.milli
        if need <= 0:
            return out
    return None


def _kept(kept: int) -> str:
    """What a partly moved gang keeps, for sentences."""
    if not kept:
        return ""
    if kept == 1:
        return "; its other pod stays where it is"
    return f"; its other {kept} pods stay where they are"


def _at(node: str, devices: Iterable[int]) -> str:
    """Where a pod runs, for sentences: 'node-1 GPU 0', 'node-2 GPUs 0+1'."""
    devices = list(devices)
    return f"{node} GPU{'s' if len(devices) > 1 else ''} {'+'.join(str(d) for d in devices)}"
