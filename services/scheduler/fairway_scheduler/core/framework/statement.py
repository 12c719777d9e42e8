"""The statement: an action's changes to the session, kept or undone as one.

Every change an action makes goes through one, as one operation log:
- `place(pod, request)`: a pod takes room on a node of the statement's pool;
- `evict(hold)`: a running pod's room is released (its queue stops counting it);
- `allocate(workload)` / `pipeline(workload)`: the pods placed since the last of these become
  the workload's `Placement` (counted by its queue); pipelined ones use room that evicted pods
  still hold.
`checkpoint()` marks a point in the log and `rollback(cp)` undoes everything after it, newest
first, so a simulation (evict victims, try the preemptor, prune, check) leaves no trace when it
fails. `take_back(holds)` undoes evictions out of order, where the room they left is still free
(pruning victims a placement turned out not to need). `commit()` keeps what was done.
"""

from collections.abc import Callable

from fairway_scheduler.core.framework.session import Hold, Request, Session, pod_request
from fairway_scheduler.core.model import Placement, PodPlacement, Workload
from fairway_scheduler.core.nodes import Domain, NodeState, PoolNodes, Take
from fairway_scheduler.core.queues import MILLI

_PLACE, _EVICT, _RECORD = range(3)


class Statement:
    def __init__(self, session: Session, pool: PoolNodes | None = None):
        self.session = session
        self.pool = pool  # where `place` puts pods
        self.within: Domain | None = None  # and in it, only this topology domain's nodes
        self._log: list[tuple] = []
        self._takes: list[tuple[str, Take]] = []  # placed, not yet part of a placement
        self._settled = pool.settled_version() if pool is not None else None

    def checkpoint(self) -> int:
        return len(self._log)

    # operations -------------------------------------------------------------------------
    def place(self, pod: str, request: Request) -> Take | None:
        assert self.pool is not None, "a statement without a pool places nothing"
        if request.fraction:
            take = self.pool.place_fraction(request.devices, request.portion, request.memory,
                                            request.cpu, request.mem, request.node_type,
                                            self.within)
        elif request.devices:
            take = self.pool.place_whole(request.devices, request.cpu, request.mem,
                                         request.node_type, self.within)
        else:
            take = self.pool.place_cpu(request.cpu, request.mem, request.node_type,
                                       self.within)
        if take is not None:
            self._takes.append((pod, take))
            self._log.append((_PLACE, take))
        return take

    def evict(self, hold: Hold) -> None:
        self.session.release(hold)
        self._log.append((_EVICT, hold))

    def allocate(self, workload: Workload) -> None:
        """The pods placed since the last placement, bound now."""
        self._record(workload, pipelined=False, moved=False)

    def pipeline(self, workload: Workload, *, moved: bool = False) -> None:
        """The pods placed since the last placement, bound once the evicted pods are gone
        (`moved`: a running workload moved by a consolidation)."""
        self._record(workload, pipelined=True, moved=moved)

    def _record(self, workload: Workload, *, pipelined: bool, moved: bool) -> None:
        assert self.pool is not None
        session = self.session
        request = session.requests[workload.id]
        takes, self._takes = self._takes, []
        pods = []
        for pod, take in takes:
            asked = pod_request(request, workload, pod)
            portion = take.milli / MILLI if asked.fraction else None
            # a master sized apart asks for a fixed share: the workers' limit is not its own
            limit = None if asked is not request else _limit(workload, take.node, portion)
            pods.append(PodPlacement(pod, take.node.name, take.devices, portion,
                                     asked.memory, limit))
        used = [sum(t.milli * len(t.devices) for _, t in takes), sum(t.cpu for _, t in takes),
                sum(t.mem for _, t in takes)]
        session.account(workload, self.pool.name, used, +1)
        session.held[workload.id] = session.held.get(workload.id, 0) + len(pods)
        first = workload.id not in session.held_pool
        if first:
            session.hold_in(workload.id, self.pool.name)
        session.placements.append(Placement(workload.id, tuple(pods), pipelined, moved))
        self._log.append((_RECORD, workload, takes, used, first))

    # keeping and undoing ----------------------------------------------------------------
    def rollback(self, checkpoint: int = 0) -> None:
        """Undo every operation after `checkpoint`, newest first."""
        while len(self._log) > checkpoint:
            op = self._log.pop()
            if op[0] == _EVICT:
                restored = self.session.restore(op[1])
                assert restored, "a released pod's room was taken during a rolled-back attempt"
            else:
                self._undo_placing(op)
        if not checkpoint and self.pool is not None and self._settled is not None:
            self.pool.rolled_back(self._settled)  # its room is as the statement found it

    def _undo_placing(self, op: tuple) -> None:
        pool = self.pool
        assert pool is not None
        if op[0] == _PLACE:
            self._takes.pop()
            pool.give(op[1])
            return
        _, workload, takes, used, first = op
        session = self.session
        session.placements.pop()
        if first:
            session.hold_in(workload.id, None)
        session.held[workload.id] = session.held.get(workload.id, 0) - len(takes)
        session.account(workload, pool.name, used, -1)
        self._takes = takes

    def take_back(self, holds: list[Hold], accept: Callable[[], bool] = lambda: True) -> bool:
        """Undo the eviction of `holds` (all or none) if their room is still free and
        `accept()` agrees afterwards; they leave the log as if never evicted."""
        session = self.session
        done: list[Hold] = []
        for hold in holds:
            if not session.restore(hold):
                break
            done.append(hold)
        if len(done) == len(holds) and accept():
            back = {id(h) for h in holds}
            self._log = [op for op in self._log if op[0] != _EVICT or id(op[1]) not in back]
            return True
        for hold in reversed(done):
            session.release(hold)
        return False

    def commit(self) -> None:
        """Keep everything done: nothing can be rolled back any more."""
        self.session.commits += 1
        self._log.clear()
        self._takes.clear()


def _limit(workload: Workload, node: NodeState, portion: float | None) -> float | None:
    """The portion a dynamic fraction may grow to on this node: its portion limit, or its
    memory limit over the node's device memory (capped at the whole device)."""
    if portion is None:
        return None
    if workload.gpu_memory_limit_mib is not None and node.dev_memory:
        return round(min(1.0, workload.gpu_memory_limit_mib / node.dev_memory), 4)
    return workload.gpu_limit
