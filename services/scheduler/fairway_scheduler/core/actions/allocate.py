"""The allocate action: place waiting workloads, fairest queue first, on idle capacity.

Order: gangs first, then the pods above gangs' minimums. Each walk takes departments (and
department-less projects) in queue order (`queues.order_key`, counting the workload each would
try next: at or below fair share first, within deserved quota with it first, smaller dominant
share with it, then without it, then the older queue); inside the chosen department the same
for its projects; inside a project by priority (highest first), then submission time, then id.
After every attempt the queue goes back with its new standing, so the walk interleaves queues as
they fill. Pods above the minimum are handed out one per workload per turn, the workload with
the fewest of them first, so spare room is shared between elastic workloads.

A workload is tried in its pools in order. In a pool: the queue checks (limits of the project
and its department, and for non-preemptible workloads their deserved quota), then the gang
(`min_pods` minus what it already holds) is placed all together or not at all; pods beyond the
gang follow one by one while they fit and the limits allow. Idle capacity is lent: only limits
cap an allocation, never the fair share (the reclaim action takes it back). But room is lent only
once every queue had its turn within its fair share: the walks run twice, first placing only
what keeps a workload's project and department within their fair shares in the pool it lands
in, then lending what is left. The order compares a project's queues of every pool together,
so without the first walk a project below its share in one pool went ahead of others in the
pool where it was already at its share, lent itself room there that a project below its share
in that pool was waiting for, and lost it to reclaim the next cycle (issue 15's KAI scale: five
evictions in six went that way, the same workloads evicted every other cycle).

A lending walk walks only the workloads that could be placed when it begins (`_may_place`):
room only shrinks while allocation runs, so those refused in every pool then are told why at
once, with the room as it was then, and left out of the walk.

CPU and memory quotas are checked only where the queue configures them.
"""

import heapq
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Set
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, cast

from fairway_scheduler.core import reasons, topology
from fairway_scheduler.core.framework import (
    Request,
    Session,
    Statement,
    gang_need,
    pod_request,
    sized_apart,
)
from fairway_scheduler.core.framework import too_large as session_too_large
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.model import (
    ClusterSnapshot,
    CycleResult,
    Nomination,
    PendingCode,
    PendingReason,
    WaitReason,
    Workload,
)
from fairway_scheduler.core.nodes import FULL, PoolNodes, milli_of, natural
from fairway_scheduler.core.queues import CPU, GPU, MEMORY, UNLIMITED, Queue, order_key
from fairway_scheduler.core.swap import short_message

# A project's turns in a walk: a heap (pods above the minimum, which come back), or a sorted
# deque taken from the front (a gang walk's, where none comes back)
Backlog = list[tuple] | deque[tuple]


def allocate(snapshot: ClusterSnapshot, ledger: Ledger | None = None) -> CycleResult:
    """One cycle of the allocate action alone (no disruptive action).

    `ledger`: what running pods hold, kept by a caller that runs cycle after cycle; it stands
    in for `snapshot.allocations` (which are then not read) and is not changed."""
    session = Session(snapshot, ledger)
    Allocate(session).run()
    return session.result()


class Allocate:
    def __init__(self, session: Session):
        self.session = session
        self.capacity = [max(sum(c[r] for c in session.capacity().values()), 1)
                         for r in range(3)]
        # Why a request of one shape did not fit in a pool, and the pool's version then: most
        # waiting workloads fail as the one before them did, and nothing they read (the pool's
        # room, its queues' allocations, which only a take or give in it changes; fair shares,
        # fixed for the cycle) has changed until the version moves (and stays moved: an
        # attempt rolled back leaves the room as it was, `PoolNodes.settled_version`).
        self._refused: dict[tuple, tuple[int, reasons.Reason]] = {}
        # The first walks place only within fair shares (see the module's docstring); what
        # they refuse is tried again, and its pending reason written, by the lending walks.
        self.within_share = False
        # What each waiting workload asks, shared by those of a project that ask alike (see
        # `_Asks`), and the classes by what they are made of.
        self.asked: dict[str, _Asks] = {}
        self._classes: dict[tuple, _Asks] = {}
        self._owned: set[tuple] = set()  # the classes this cycle copied (`_own`)
        self.probing = False  # see `_may_place`
        self._refused_alike: set[tuple] = set()  # see `attempt`
        self._host_shorts: dict[tuple, tuple | None] = {}  # see `_no_room_any`

    # order ------------------------------------------------------------------------------
    def run(self) -> None:
        """Gangs first: every waiting workload's gang (its minimum), in queue order. Then the
        pods above the minimum, one per workload per turn, in queue order again."""
        session = self.session
        if not session.waiting:
            return
        self._find_classes()
        asked = self.asked
        if session.snapshot.nominated:
            self._place_nominated(session.snapshot.nominated)
        for within_share in (True, False):
            self.within_share = within_share
            # what the first walks refused (as lending, or unsaid), the lending ones try again
            self._refused = {k: v for k, v in self._refused.items()
                             if v[1] is not _LENDS and v[1] is not _UNSAID}
            if within_share:
                # the workloads that may place within fair shares when the first walks begin,
                # listed now: one that places in the gang walk leaves its class for another
                fitting = self._within_share()
                candidates = {p: [w for a in classes for w in a.members.values()]
                              for p, classes in fitting.items()}
                self._walk_backlog(self._gang_backlog(fitting), elastic=False)
                extras = {p: [w for w in ws if asked[w.id].extras]
                          for p, ws in candidates.items()}
                self._walk({p: ws for p, ws in extras.items() if ws}, elastic=True)
            else:
                self._walk(self._may_place(self._classes_by_project(lambda asks: asks.gangs)),
                           elastic=False)
                self._walk(self._may_place(self._classes_by_project(lambda asks: asks.extras)),
                           elastic=True)

    def _find_classes(self) -> None:
        """Each waiting workload's class and pods waiting: the ledger's kept ones
        (`WaitingClasses`), brought up to the session; copies of its tables, which this cycle
        changes (the pods lists are the kept ones: those its placements shorten are made
        again at the next sync)."""
        session = self.session
        kept = session.ledger.asks
        if not isinstance(kept, WaitingClasses):
            kept = session.ledger.asks = WaitingClasses()
        if kept.sync(session):
            # (`copy`: cloned whole, gaps of deleted entries and all; `dict()` inserts anew)
            self.waiting = kept.pods.copy()
            self.asked = kept.asked.copy()
            self._classes = kept.classes.copy()
            kept.placements = session.placements
        else:  # the same workload id twice: worked out for this cycle alone
            self.waiting = {w.id: _pods_in_order(w) for w in session.waiting}
            for w in session.waiting:
                self.asked[w.id] = self._asks(w)
        session.pods_waiting = self.waiting

    def _classes_by_project(self, walks: Callable[["_Asks"], bool]
                            ) -> dict[str, list["_Asks"]]:
        """The classes of waiting workloads that the walk takes (`walks`), by project."""
        out: dict[str, list[_Asks]] = {}
        for asks in self._classes.values():
            if asks.members and walks(asks):
                out.setdefault(asks.project, []).append(asks)
        return out

    def _may_place(self, by_project: dict[str, list["_Asks"]]) -> dict[str, list[Workload]]:
        """The workloads a lending walk may place: those that would place their gang (or one
        more pod) in one of their pools if the walk gave them the first turn. Room only
        shrinks and allocations only grow while `allocate` runs, so one refused everywhere
        now is refused at its turn too: its pending reason is written now (the room it names
        is the room when the walk begins) and it is not walked (as kube-scheduler keeps
        unschedulable pods out of its active queue). In a full cluster that is most waiting
        workloads: the walk, which puts the queues back in order after every attempt, is
        left with those that may fit. Each is tried as in the walk and undone (`probing`);
        what is refused is remembered per shape and pool (`_in_pool`), and the answer per
        project and request, so thousands that ask alike cost one try: the probe goes by
        class (`_Asks`), and a class refused has its workloads told why together."""
        out: dict[str, list[Workload]] = {}
        refused: dict[str, list[tuple[_Asks, reasons.Reason]]] = {}
        self.probing = True
        try:
            for project, classes in by_project.items():
                keep: list[Workload] = []
                # what a class that asks as another of its project did (nothing changes while
                # probing)
                alike: dict[tuple, reasons.Reason | None] = {}
                for asks in classes:
                    members = asks.members.values()
                    reason = self._probe(next(iter(members)), asks, alike)
                    if reason is None:
                        keep.extend(members)
                    else:
                        refused.setdefault(project, []).append((asks, reason))
                if keep:
                    out[project] = keep
        finally:
            self.probing = False
        # the same reasons, in the same order, whatever order the snapshot lists workloads in
        for project in sorted(refused):
            self._told(refused[project])
        return out

    def _told(self, refused: list[tuple["_Asks", reasons.Reason]]) -> None:
        """The pending reasons of a project's refused classes: each class's members (their
        `_told_order` keys, copied: the class changes later) told its reason at once, read in
        their workloads' order across the classes (`PendingReasons.tell_classes`)."""
        self.session.pending.tell_classes([(list(asks.members.order), WaitReason(code, message))
                                           for asks, (code, message) in refused])

    def _probe(self, workload: Workload, asks: "_Asks",
               alike: dict[tuple, reasons.Reason | None]) -> reasons.Reason | None:
        """`_may_place`'s answer for a class of workloads: why one would be refused in every
        pool now, or None when it may be placed or the walk says why it waits. `alike`: the
        answers for the project's other classes, by what the probe reads of them."""
        if asks.unschedulable is not None or not asks.waiting or asks.short:
            return None  # the walk says why, as before
        reason = alike.get(asks.probe, _UNKNOWN) if asks.probe is not None else _UNKNOWN
        if reason is _UNKNOWN:
            reason = self._refused_everywhere(workload, self.waiting[workload.id], asks.gang,
                                              asks.held, asks.pools)
            if asks.probe is not None:
                alike[asks.probe] = reason
        return reason

    def _within_share(self) -> dict[str, list["_Asks"]]:
        """The classes of workloads the first walks may place, by project: those asking no
        GPU, and those with a pool where their next pod (the least they could place) keeps
        their project and its department within their fair shares. Allocations only grow
        while `allocate` runs: a workload left out would be refused (`_lends`) all through
        the first walks. Most of a busy cluster's waiting workloads belong to queues at their
        share: their walk is the lending one."""
        return self._classes_by_project(lambda asks: self._may_fit_within_share(
            asks.project, asks.request, asks.pools))

    def _may_fit_within_share(self, project: str, request: Request, pools: tuple[str, ...]
                              ) -> bool:
        session = self.session
        for name in pools:
            pool = session.pools.get(name)
            need = request.vector(pool.max_dev_memory if pool else 0)[GPU]
            if not need or all(q.allocated[GPU] + need <= q.fair[GPU]
                               for q in session.queues.project(project, name).chain()):
                return True
        return False

    def _refused_everywhere(self, workload: Workload, waiting: list[str], gang: int, held: int,
                            pools: tuple[str, ...]) -> reasons.Reason | None:
        """While probing: why the workload would be refused in every pool now (as `attempt`
        says it), or None when one takes it."""
        found: list[reasons.Reason] = []
        for pool in pools:
            reason = self._in_pool(workload, waiting, max(gang, 1), held, pool)
            if reason is None:
                return None
            found.append(reason)
        return next((r for r in found if r[0] != PendingCode.NODE_POOL_UNAVAILABLE), found[0])

    def _place_nominated(self, nominations: tuple[Nomination, ...]) -> None:
        """Workloads a reclaim, preemption or move made room for go first, each in the pool
        where its room was made, in the order they were decided (a preemptor and the
        workloads moved aside for it fit together in that order). One that does not fit yet
        stays nominated while the pods evicted for it are leaving (any pod in its pool, where
        none are named); then it is only the next in line."""
        session = self.session
        leaving: Set[str] | None = None
        for nomination in nominations:
            # (each waiting workload is a member of its class: no index of the tens of
            # thousands waiting is made for the few nominated)
            asks = self.asked.get(nomination.workload_id)
            workload = asks.members.get(nomination.workload_id) if asks is not None else None
            if workload is None:
                continue  # bound, or gone
            if workload.id not in session.unschedulable:
                pods = self.waiting[workload.id]
                held = session.held.get(workload.id, 0)
                gang = max(0, workload.min_pods - held)
                if pods and len(pods) >= gang and self._in_pool(
                        workload, pods, max(gang, 1), held, nomination.pool) is None:
                    continue
            if leaving is None:
                leaving = session.snapshot.evicting_workloads()
            if (any(v in leaving for v in nomination.victims) if nomination.victims
                    else any(session.held_pool.get(v) == nomination.pool for v in leaving)):
                session.nominated.append(nomination)

    def _turn(self, w: Workload, elastic: bool) -> tuple:
        """Its place in its project's backlog (for pods above the minimum the workload with
        the fewest of them first, then `_told_order`), the workload, what it asks there
        (`_need`: it stands while the workload waits in it; the order never compares it, the
        turn is unique), and what it is refused as in the first walks (`_Asks.alike`: carried
        in the turn, so that a turn of a class refused goes by without looking the workload
        up). A gang walk's turn, only sorted and never in a heap, is its order alone, and in
        place of the workload its class's members (`_Members`), where the walk finds it by
        the order's id if it is tried: most turns at KAI's scale go by untried, and tens of
        thousands of workloads are not read."""
        asks = self.asked[w.id]
        need = asks.needs[elastic] or self._need(w, asks, elastic)
        alike = asks.alike[elastic] if asks.alike is not None else None
        if elastic:
            return (asks.held - w.min_pods, _told_order(w)), w, need, alike
        return _told_order(w), asks.members, need, alike

    def _walk(self, by_project: dict[str, list[Workload]], *, elastic: bool) -> None:
        """Try the workloads in queue order (`_walk_backlog`)."""
        turns = {p: [self._turn(w, elastic) for w in ws] for p, ws in by_project.items()}
        backlog: dict[str, Backlog] = {}
        for project, its_turns in turns.items():
            if elastic:
                heapq.heapify(its_turns)
                backlog[project] = its_turns
            else:
                its_turns.sort(key=_ORDER)  # (the orders are unique)
                backlog[project] = deque(its_turns)
        self._walk_backlog(backlog, elastic=elastic)

    def _gang_backlog(self, by_project: dict[str, list["_Asks"]]) -> dict[str, Backlog]:
        """The backlogs of a gang walk of whole classes (those of them it takes, `gangs`): a
        class's members are in their order already (`_Members.order`, which is their turn's), so
        a project's backlog is its classes' runs merged (a sorted list is a heap), made
        without a step per workload."""
        backlog: dict[str, Backlog] = {}
        for project, classes in by_project.items():
            turns: list[tuple] = []
            runs = 0
            for asks in classes:
                if not (asks.gangs and asks.members):
                    continue
                members = asks.members
                order = members.order
                need = asks.needs[False] or self._need(members[_WORKLOAD_ID(order[0])], asks, False)
                turns += zip(order, repeat(members), repeat(need),
                             repeat(asks.alike[False] if asks.alike is not None else None))
                runs += 1
            if runs > 1:
                turns.sort(key=_ORDER)  # (the orders are unique)
            if turns:
                backlog[project] = deque(turns)
        return backlog

    def _walk_backlog(self, backlog: dict[str, Backlog], *, elastic: bool) -> None:
        """Try workloads in queue order: the department (or department-less project) that goes
        first (`order_key` with its next workload), then the same inside it, then the project's
        own order (`_turn`). After every attempt the queue goes back with its new standing, so
        the walk interleaves queues as they fill. `backlog`: each project's turns, as heaps;
        in a gang walk, where no turn comes back, as sorted deques (taken from the front: the
        same turns in the same order, without a heap's sift for each of the tens of thousands
        of turns at KAI's scale)."""
        if not backlog:
            return
        session = self.session
        pools = list(session.pools)
        project_queues = {p: [session.queues.project(p, pool) for pool in pools]
                          for p in backlog}
        groups: dict[str, list[str]] = {}
        group_queues: dict[str, list[Queue]] = {}
        for project, queues in project_queues.items():
            department = session.queues.department_of.get(project)
            group = f"d/{department}" if department else f"p/{project}"
            groups.setdefault(group, []).append(project)
            group_queues[group] = ([q.parent for q in queues if q.parent is not None]
                                   if department else queues)

        def turn(w: Workload) -> tuple:
            return self._turn(w, elastic)

        project_keys = _Keys(project_queues, self.capacity)
        group_keys = _Keys(group_queues, self.capacity)

        def project_key(project: str) -> tuple:
            return project_keys.of(project, backlog[project][0][2])

        inner = {g: [(project_key(p), p) for p in ps] for g, ps in groups.items()}
        for heap in inner.values():
            heapq.heapify(heap)

        def group_key(group: str) -> tuple:
            project = inner[group][0][1]
            return group_keys.of(group, backlog[project][0][2])

        top = [(group_key(g), g) for g in groups]
        heapq.heapify(top)

        def stays(project: str, group: str, need: tuple[int, ...]) -> bool:
            """Whether the project, its next workload asking `need`, stays first in its group
            and the group first (both out of their heaps)."""
            projects = inner[group]
            return ((not projects or (project_keys.of(project, need), project) < projects[0])
                    and (not top or (group_keys.of(group, need), group) < top[0]))

        while top:
            _, group = heapq.heappop(top)
            _, project = heapq.heappop(inner[group])
            if self._turns(backlog[project], project, group, stays, turn, elastic):
                # its queues' allocations moved: keys anew
                project_keys.moved(project)
                group_keys.moved(group)
            if backlog[project]:
                heapq.heappush(inner[group], (project_key(project), project))
            if inner[group]:
                heapq.heappush(top, (group_key(group), group))

    def _turns(self, backlog: Backlog, project: str, group: str,
               stays: Callable[[str, str, tuple[int, ...]], bool],
               turn: Callable[[Workload], tuple], elastic: bool) -> bool:
        """The project's turns, from the head of its backlog, while nothing moves and its next
        workload keeps it first in its group and the group first: that workload goes next,
        as the heaps would give it back (their keys are unique), without going in them. At
        KAI's scale a project's refused workloads go one after another. True when it placed
        (its queues' keys move)."""
        placements = self.session.placements
        first: dict[tuple[int, ...], bool] = {}  # `stays`, per need, while nothing moves
        last = None  # the need of the turn just let go on
        # in the first walks, one that asks as a workload refused is refused again, saying
        # nothing (`attempt`): its turn goes by without the attempt
        refused = self._refused_alike if self.within_share else _NOTHING
        take: Callable[[Any], tuple] = heapq.heappop if elastic else deque.popleft
        while True:
            order, workload, _, alike = take(backlog)
            if alike is None or alike not in refused:
                if not elastic:  # (a gang walk's turn: its class's members, see `_turn`)
                    workload = workload[order[1]]
                placed = len(placements)
                if self.attempt(workload, elastic=elastic):
                    # its next pod comes back in its turn (only above the minimum: a gang
                    # walk's backlog is a deque that no turn comes back to)
                    heapq.heappush(cast(list, backlog), turn(workload))
                if len(placements) != placed:
                    return True
            if not backlog:
                return False
            need = backlog[0][2]
            if need is not last:  # (turns of a class share their need: turn after turn)
                goes = first.get(need)
                if goes is None:
                    goes = first[need] = stays(project, group, need)
                if not goes:
                    return False
                last = need

    def _need(self, workload: Workload, asks: "_Asks", elastic: bool) -> tuple[int, ...]:
        """What the workload's next attempt would add to its queue: its gang, or one pod.
        Asked when it enters a walk's backlog (each walk asks again): kept with its class,
        which it reads all of (a master sized apart is a class of its own). Read only, never
        changed."""
        need = asks.needs[elastic] = tuple(self._needed(workload, elastic))
        return need

    def _needed(self, workload: Workload, elastic: bool) -> list[int]:
        session = self.session
        request = session.requests[workload.id]
        pool = session.pools.get(session.target_pools(workload)[0])
        dev_memory = pool.max_dev_memory if pool else 0
        pods = 1 if elastic else max(1, workload.min_pods - session.held.get(workload.id, 0))
        if request.master is not None:
            return gang_need(request, workload, self.waiting[workload.id][:pods], dev_memory)
        vector = request.vector(dev_memory)
        return [v * pods for v in vector]

    # one workload -----------------------------------------------------------------------
    def attempt(self, workload: Workload, *, elastic: bool = False) -> bool:
        """Place the gang (all or nothing), or (`elastic`) one more pod once the gang runs.
        True when the workload placed a pod above its minimum and has more to place: it comes
        back in its next turn."""
        asks = self.asked[workload.id]
        if asks.unschedulable is not None:
            self._pending(workload, asks.unschedulable, unschedulable=True)
            return False
        waiting = self.waiting[workload.id]
        held, gang = asks.held, asks.gang
        if asks.short:
            self._pending(workload, reasons.waiting_for_pods(workload.min_pods,
                                                             held + len(waiting)))
            return False
        pools = asks.pools
        alike = None
        if self.within_share:
            # A refusal in the first walks writes nothing: one that asks as a workload refused
            # in every pool is refused again, for the rest of these walks: room only shrinks
            # and allocations only grow while allocation runs, and what refused it (no room,
            # a limit, deserved quota, room lent above a fair share) only stays so
            # (thousands of waiting workloads ask alike, tried one after another by `_walk`).
            alike = asks.alike[elastic] if asks.alike is not None else None
            if alike is not None and alike in self._refused_alike:
                return False
        found: list[reasons.Reason] = []
        for pool in pools:
            reason = self._in_pool(workload, waiting, max(gang, 1), held, pool)
            if reason is None:
                return elastic and bool(waiting)
            found.append(reason)
        best = next((r for r in found if r[0] != PendingCode.NODE_POOL_UNAVAILABLE), found[0])
        if alike is not None:
            self._refused_alike.add(alike)
        self._pending(workload, best)
        return False

    def _asks(self, workload: Workload) -> "_Asks":
        """The workload's class (`_Asks`) as it waits now, which it joins."""
        asks = self._own(_class_of(self._classes, self.session, workload,
                                   self.waiting[workload.id]))
        asks.join(workload)
        return asks

    def _own(self, asks: "_Asks") -> "_Asks":
        """The cycle's own copy of a class, to change (a kept one stays as the cycle found
        it, `WaitingClasses`)."""
        if asks.key not in self._owned:
            asks = self._classes[asks.key] = asks.copy()
            self._owned.add(asks.key)
        return asks

    def _in_pool(self, workload: Workload, waiting: list[str], first: int, held: int,
                 name: str) -> reasons.Reason | None:
        """Place `first` pods of `waiting` together in pool `name` (removing them from
        `waiting`), or say why not."""
        session = self.session
        pool = session.pools.get(name)
        if pool is None:
            return reasons.pool_missing(name)
        if not pool.nodes:
            return reasons.pool_not_ready(name, session.all_nodes_in[name])
        request = session.requests[workload.id]
        shape = (name, workload.project, workload.preemptible, request, first, held > 0,
                 sized_apart(request, workload, waiting[:first]),
                 # pods it holds pin a topology placement to their domain: its own answer
                 workload.id if request.topology is not None and held else None)
        refused = self._refused.get(shape)
        if refused is not None and refused[0] == pool.settled_version():
            return refused[1]
        reason = self._try_pool(workload, waiting, first, held, name, pool, request)
        if reason is not None:
            # a gang's rollback moves the version, not the room: the settled one
            self._refused[shape] = (pool.settled_version(), reason)
        return reason

    def _try_pool(self, workload: Workload, waiting: list[str], first: int, held: int,
                  name: str, pool: PoolNodes, request: Request) -> reasons.Reason | None:
        session = self.session
        too_large = session_too_large(pool, request)
        if too_large:
            return reasons.too_large(name, request, too_large)
        pods = waiting[:first]
        if request.topology is not None and not topology.any_node_will_do(
                session.topology(name), request.topology, first, held > 0):
            return self._try_topology(workload, waiting, first, name, pool, request)
        if sized_apart(request, workload, pods):
            return self._try_sized_apart(workload, waiting, first, held, name, pool, request)
        vector = request.vector(pool.max_dev_memory)
        queue = session.queues.project(workload.project, name)
        refused = quota_refusal(workload, queue, vector, first) or self._lends(queue,
                                                                                vector, first)
        if refused:
            return refused
        if not request.fraction and request.devices:
            fit = pool.whole_fit_count(request.devices)
            if fit < first:
                return self._no_room(request, queue, vector, first, fit, name, held)
        statement = Statement(session, pool)
        placed = 0
        for pod in pods:
            if statement.place(pod, request) is None:
                break
            placed += 1
        if placed < first:
            statement.rollback()
            return self._no_room(request, queue, vector, first, placed, name, held)
        self._keep(statement, workload, waiting, first)
        return None

    def _keep(self, statement: Statement, workload: Workload, waiting: list[str], first: int
              ) -> None:
        """The pods found room: kept, or (`probing`, see `_may_place`) undone, which leaves
        the pool's room and settled version as they were."""
        if self.probing:
            statement.rollback()
            return
        statement.allocate(workload)
        statement.commit()
        del waiting[:first]
        # it holds more, and waits with less: its class is found again
        self._own(self._classes[self.asked[workload.id].key]).leave(workload)
        self.asked[workload.id] = self._asks(workload)

    def _lends(self, queue: Queue, vector: list[int], pods: int) -> reasons.Reason | None:
        """In the first walks: `_LENDS` when the pods would take the project or its department
        above its fair share in GPUs in this pool (room lent, which waits for the lending
        walks)."""
        need = vector[GPU] * pods
        if self.within_share and need and any(q.allocated[GPU] + need > q.fair[GPU]
                                              for q in queue.chain()):
            return _LENDS
        return None

    def _try_topology(self, workload: Workload, waiting: list[str], first: int, name: str,
                      pool: PoolNodes, request: Request) -> reasons.Reason | None:
        """`_try_pool` for a workload with a topology placement: the pods go inside one domain
        of the pool's topology (`topology.place`), or none does."""
        session = self.session
        pods = waiting[:first]
        need = gang_need(request, workload, pods, pool.max_dev_memory)
        queue = session.queues.project(workload.project, name)
        refused = quota_refusal(workload, queue, need, 1) or self._lends(queue, need, 1)
        if refused:
            return refused
        statement = Statement(session, pool)
        asked = request.topology
        assert asked is not None
        held = session.nodes_of(workload.id) if session.held.get(workload.id, 0) else set()
        pool_topology = session.topology(name)

        def place_pod(pod: str) -> bool:
            return statement.place(pod, pod_request(request, workload, pod)) is not None

        room = topology.room_for(request, first, sized_apart(request, workload, pods))
        if not topology.place(statement, pool_topology, asked, held, pods, place_pod, room):
            statement.rollback()
            if asked[0] is not None:
                reason = topology.no_room(statement, name, pool_topology, asked, held, pods,
                                          place_pod, room)
                statement.rollback()
                return reason
            # only a preference: as the same pods would have found no room anywhere
            if sized_apart(request, workload, pods):
                return self._no_room_apart(request, queue, need, first, None, name,
                                           session.held.get(workload.id, 0))
            return self._no_room(request, queue, request.vector(pool.max_dev_memory), first,
                                 0, name, session.held.get(workload.id, 0))
        self._keep(statement, workload, waiting, first)
        return None

    def _try_sized_apart(self, workload: Workload, waiting: list[str], first: int, held: int,
                         name: str, pool: PoolNodes, request: Request) -> reasons.Reason | None:
        """`_try_pool` for pods among which the master is sized apart: the queue checks count
        what they ask together, each pod is placed at its own size (the master first, as its
        name sorts), and a sentence saying why not names both sizes."""
        session = self.session
        pods = waiting[:first]
        need = gang_need(request, workload, pods, pool.max_dev_memory)
        queue = session.queues.project(workload.project, name)
        refused = quota_refusal(workload, queue, need, 1) or self._lends(queue, need, 1)
        if refused:
            return refused
        workers = first - 1
        if not request.fraction and request.devices and workers:
            fit = pool.whole_fit_count(request.devices)
            if fit < workers:
                return self._no_room_apart(request, queue, need, first, fit, name, held)
        statement = Statement(session, pool)
        placed = 0
        for pod in pods:
            if statement.place(pod, pod_request(request, workload, pod)) is None:
                break
            placed += 1
        if placed < first:
            statement.rollback()
            # the master goes first (its name sorts first): none placed, it found no room
            return self._no_room_apart(request, queue, need, first,
                                       placed - 1 if placed else None, name, held)
        self._keep(statement, workload, waiting, first)
        return None

    def _no_room_apart(self, request: Request, queue: Queue, need: list[int], first: int,
                       fit: int | None, name: str, held: int) -> reasons.Reason:
        """Why pods with the master sized apart found no room: the gang's sentence with both
        sizes (`fit`: how many of the others fit, None: the master does not), or for the
        master alone the one-pod sentences at its own size."""
        assert request.master is not None
        if self.within_share:
            return _UNSAID
        if first == 1:
            return self._no_room(request.master, queue, need, 1, 0, name, held)
        pool = self.session.pools[name]
        free, nodes = pool.free_gpus()
        code, message = reasons.gang(name, first, request, fit, free, nodes, master=True)
        if request.node_type is not None:
            message += f" (only nodes of type {request.node_type} may take it)"
        return code, message

    def _no_room(self, request: Request, queue: Queue, vector: list[int], first: int, fit: int,
                 name: str, held: int) -> reasons.Reason:
        if self.within_share:
            return _UNSAID  # the lending walks say it, with the room then left
        code, message = self._no_room_any(request, queue, vector, first, fit, name, held)
        if request.node_type is not None:
            message += f" (only nodes of type {request.node_type} may take it)"
        return code, message

    def _no_room_any(self, request: Request, queue: Queue, vector: list[int], first: int, fit: int,
                 name: str, held: int) -> reasons.Reason:
        pool = self.session.pools[name]
        free, nodes = pool.free_gpus()
        if first > 1:
            slots = None
            if pool.pods_full or len(pool.nodes) < first:  # else every node has a slot
                slots = sum(max(0, n.max_pods - n.pods) for n in pool.nodes)
            return reasons.gang(name, first, request, fit, free, nodes,
                                pod_slots=slots if slots is not None and slots < first
                                else None)
        blocked = _pod_blocked(pool, request)
        if blocked:
            return reasons.pods_full(name, request, len(blocked), _max_pods(blocked),
                                     more=held > 0)
        swap = _swap_short(pool, request)
        if swap is not None:  # a device could take it but for the swap bounds: the numbers
            return PendingCode.NO_FITTING_NODE, swap
        need = vector[GPU] * first
        if need and queue.allocated[GPU] + need > queue.fair[GPU]:
            return reasons.over_fair_share(queue, need, pool.largest_slot(), free)
        # the same for every project that asks alike while the pool's room stands
        known = (name, pool.settled_version(), id(request))
        short = self._host_shorts.get(known, _UNKNOWN)
        if short is _UNKNOWN:
            short = self._host_shorts[known] = _host_short(pool, request)
        if short is not None:
            return reasons.host_short(name, request, *short, more=held > 0)
        return reasons.no_fitting_node(name, first, request, pool.largest_slot(), free,
                                       more=held > 0)

    def _pending(self, workload: Workload, reason: reasons.Reason, *,
                 unschedulable: bool = False) -> None:
        if self.within_share:
            return  # the lending walks try it again and say why it waits
        # (one reason per workload and cycle: `PendingReasons` checks it when read)
        self.session.pending.tell(PendingReason(workload.id, reason[0], reason[1], unschedulable))


class _Asks:
    """What allocation reads of a waiting workload besides its turn and the cycle's state:
    its project, request, preemptibility, gang, what it holds and where, whether pods of it
    wait (and enough for its gang), why it never fits. Workloads of a project that ask alike
    (thousands of them) share one, and what follows from it is worked out once. It stands
    while the workload waits as it did: one that places gets its new one (`Allocate._keep`);
    nothing else changes it while allocation runs. Classes are kept between cycles
    (`WaitingClasses`); a cycle changes only its own copies (`Allocate._own`)."""

    __slots__ = ("alike", "extras", "gang", "gangs", "held", "key", "members", "needs", "pools",
                 "probe", "project", "request", "short", "unschedulable", "waiting")

    def __init__(self, key: tuple, project: str, request: Request, pools: tuple[str, ...],
                 held: int, gang: int, short: bool, waiting: bool,
                 unschedulable: reasons.Reason | None, gangs: bool, extras: bool,
                 alike: tuple | None, probe: tuple | None,
                 needs: list[tuple[int, ...] | None], members: "_Members"):
        self.key = key
        self.project = project
        self.request = request
        self.pools = pools
        self.held = held
        self.gang = gang
        self.short = short
        self.waiting = waiting
        self.unschedulable = unschedulable
        self.gangs = gangs
        self.extras = extras
        self.alike = alike
        self.probe = probe
        self.needs = needs
        self.members = members

    @staticmethod
    def of(workload: Workload, request: Request, pools: tuple[str, ...], held: int, gang: int,
           waiting: list[str], unschedulable: reasons.Reason | None) -> "_Asks":
        """The class of a workload that holds `held` pods, `waiting` of its pods waiting."""
        alone = request.master is not None or request.topology is not None
        # what an attempt in the first walks reads besides the cycle's state, per walk (gangs,
        # pods above the minimum): workloads that ask alike fare alike (`Allocate.attempt`).
        # None: a master sized apart or a topology placement reads more.
        base = (workload.project, id(request), workload.preemptible, max(gang, 1), held > 0)
        return _Asks(
            _class_key(workload, request, pools, held, waiting, unschedulable),
            workload.project, request, pools, held, gang,
            len(waiting) < gang,  # short: the walk says it waits for its pods
            bool(waiting), unschedulable,
            # gangs: in the gang walks, its gang still to place (or nothing placed yet)
            held < workload.min_pods or not held,
            # extras: in the walks of pods above the minimum, its gang runs and more wait
            (bool(waiting) and unschedulable is None and held >= workload.min_pods
             and bool(held)),
            None if alone else ((*base, False, pools), (*base, True, pools)),
            # probe: what the lending walks' probe reads (`Allocate._may_place`), within the
            # project
            None if alone else (*base[1:], pools),
            [None, None],  # needs: gang, one pod (`_need`)
            # members: the workloads of the class now, by id (one that places leaves it for
            # its new one)
            _Members())

    def copy(self) -> "_Asks":
        """The cycle's own copy of a kept class, to change."""
        return _Asks(self.key, self.project, self.request, self.pools, self.held, self.gang,
                     self.short, self.waiting, self.unschedulable, self.gangs, self.extras,
                     self.alike, self.probe, list(self.needs), self.members.copy())

    def join(self, workload: Workload) -> None:
        """The workload is of the class now (in its place in `members.order`)."""
        if workload.id in self.members:
            self.leave(self.members[workload.id])
        self.members[workload.id] = workload
        insort(self.members.order, _told_order(workload))

    def leave(self, workload: Workload) -> None:
        del self.members[workload.id]
        order = self.members.order
        del order[bisect_left(order, _told_order(workload))]


class _Members(dict[str, Workload]):
    """A class's workloads by id, and their `_told_order` keys, sorted (`order`): the order
    their pending reasons are written in, and their turns' in a gang walk."""

    __slots__ = ("order",)

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple] = []

    def copy(self) -> "_Members":  # type: ignore[override]
        out = _Members()
        out.update(self)
        out.order = list(self.order)
        return out


def _told_order(workload: Workload) -> tuple[int, str]:
    """A workload's place among its project's refused ones, when `_may_place` tells them why
    they wait: by priority (highest first), submission time, id (unique).

    Priority and submission time are one integer (`_rank`): tens of thousands of these keys
    are sorted every cycle at KAI's scale, and comparing two ints costs a fraction of
    comparing a priority and then two datetimes."""
    return (_rank(workload.priority, workload.submitted_at), workload.id)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _rank(priority: int, submitted_at: datetime) -> int:
    """(-priority, submitted_at) as one integer in the same order: the microseconds since
    1970 (within +-2**63 for every datetime) below the negated priority."""
    epoch = _NAIVE_EPOCH if submitted_at.tzinfo is None else _EPOCH
    return (-priority << 64) + (submitted_at - epoch) // _MICROSECOND


def _class_key(workload: Workload, request: Request, pools: tuple[str, ...], held: int,
               waiting: list[str], unschedulable: reasons.Reason | None) -> tuple:
    """What a workload's class (`_Asks`) is made of: workloads of one key share it."""
    gang = max(0, workload.min_pods - held)
    return (workload.project, id(request), workload.preemptible, workload.min_pods, held,
            pools, len(waiting) < gang, bool(waiting),
            # what more they read: a class of their own
            workload.id if (request.master is not None or request.topology is not None
                            or unschedulable is not None) else None)


def _class_of(classes: dict[tuple, _Asks], session: Session, workload: Workload,
              waiting: list[str]) -> _Asks:
    """The workload's class as it waits now, from `classes` (made there when new; joined by
    the caller)."""
    request = session.requests[workload.id]
    pools = session.target_pools(workload)
    held = session.held.get(workload.id, 0)
    unschedulable = session.unschedulable.get(workload.id)
    key = _class_key(workload, request, pools, held, waiting, unschedulable)
    asks = classes.get(key)
    if asks is None:
        asks = classes[key] = _Asks.of(workload, request, pools, held,
                                       max(0, workload.min_pods - held), waiting, unschedulable)
    return asks


def _pods_in_order(workload: Workload) -> list[str]:
    """The workload's pods waiting, in natural order (as it places them)."""
    pods = workload.waiting_pods
    return list(pods) if len(pods) == 1 else sorted(pods, key=natural)


class WaitingClasses:
    """Allocation's classes of waiting workloads (`_Asks`), each workload's class and its pods
    waiting in natural order, kept between cycles with the ledger (`Ledger.asks`).

    At KAI's scale some 40,000 workloads wait in about 1,200 classes, and nearly all of them
    are the same `Workload` objects as the cycle before (a kept snapshot makes a workload again
    only when something about it changed). What a class is made of besides the workload
    (`_class_key`): its request (one object per shape while the session's index of waiting
    workloads stands), its target pools (its preference, or the session's pools, unless it
    holds a pool), what it holds, and why it never fits. So a cycle finds again the class of
    the workloads whose object changed (set differences by identity, at C speed), of those
    whose holding changed (pods held or released, or its pool), whose unschedulable reason
    changed, that a placement of the last cycle shortened the pods of (allocation and the
    disruptive actions take pods off the lists they are given), and of all of them when the
    session's pools or the requests' objects change. A cycle changes only its own copies of
    the classes (`Allocate._own`) and of the index (`Allocate.asked`)."""

    def __init__(self) -> None:
        self._reset(())

    def _reset(self, pools: tuple[str, ...]) -> None:
        self.pools = pools  # the session's pools the classes were found with
        self.generation: int | None = None  # of the kept snapshot they were brought up to
        self.objects: dict[int, Workload] = {}  # by `id()`: every waiting workload
        self.workload: dict[str, Workload] = {}  # the same, by workload id
        self.asked: dict[str, _Asks] = {}  # by workload id: its class
        self.classes: dict[tuple, _Asks] = {}  # by `_Asks.key`
        self.pods: dict[str, list[str]] = {}  # by workload id: its pods waiting, natural order
        self.holding: dict[str, tuple[int, str | None]] = {}  # those holding: pods, pool
        self.unschedulable: dict[str, reasons.Reason] = {}
        # the last cycle's placements (`Session.placements`, read at the next sync): the
        # pods lists of their workloads were shortened
        self.placements: list = []

    def sync(self, session: Session) -> bool:
        """Brought up to the session's waiting workloads. False (and nothing kept) when two of
        them share an id."""
        pools = tuple(session.pools)
        snapshot = session.snapshot
        changed = None
        if pools != self.pools:
            self._reset(pools)
        elif self.generation is not None:
            changed = snapshot.changed_since(self.generation)
        self.generation = None
        if changed is not None:
            came = self._apply(*changed)
        else:
            found = self._walk(session.waiting)
            if found is None:
                self._reset(pools)
                return False
            came = found
        self.generation = snapshot.generation
        workloads = self.workload
        again: set[str] = set()  # kept workloads whose class is found again
        # what changed about the workloads kept
        held, held_pool = session.held, session.held_pool
        # (the session's waiting workloads that hold pods: these, brought up to it)
        holding = {wid: (held[wid], held_pool.get(wid)) for wid in session.waiting_holding}
        before = self.holding
        again.update(wid for wid in holding.keys() | before.keys()
                     if holding.get(wid) != before.get(wid))
        self.holding = holding
        unschedulable, before_unschedulable = session.unschedulable, self.unschedulable
        again.update(wid for wid in unschedulable.keys() | before_unschedulable.keys()
                     if unschedulable.get(wid) != before_unschedulable.get(wid))
        self.unschedulable = dict(unschedulable)
        again.update(p.workload_id for p in self.placements)
        self.placements = []
        requests = session.requests
        for asks in self.classes.values():
            asks.needs = [None, None]
            if requests[next(iter(asks.members))] is not asks.request:
                again.update(asks.members)
        fresh = {w.id for w in came}
        again = {wid for wid in again if wid in workloads and wid not in fresh}
        for wid in again:
            self._leave(workloads[wid])
        placed = [workloads[wid] for wid in again]
        placed += came
        grown: dict[int, _Asks] = {}  # the classes joined
        for workload in placed:
            pods = self.pods[workload.id] = _pods_in_order(workload)
            asks = self.asked[workload.id] = _class_of(self.classes, session, workload, pods)
            asks.members[workload.id] = workload
            asks.members.order.append(_told_order(workload))
            grown[id(asks)] = asks
        for asks in grown.values():
            asks.members.order.sort()
        return True

    def _apply(self, made: dict[str, Workload], gone: Set[str]) -> list[Workload]:
        """The workloads the kept snapshot made again (or new) since the classes' generation
        put in again, those gone taken out (no walk of every waiting workload). Returns
        those put in."""
        objects, workloads = self.objects, self.workload
        for wid in chain(gone, made):
            workload = workloads.pop(wid, None)
            if workload is not None:
                del objects[id(workload)]
                self._leave(workload)
        came = [w for w in made.values() if w.waiting_pods]
        for workload in came:
            objects[id(workload)] = workload
            workloads[workload.id] = workload
        return came

    def _walk(self, waiting: list[Workload]) -> list[Workload] | None:
        """The waiting workloads that came and went, found by the objects' identity (set
        differences at C speed). Returns those that came; None when two share an id."""
        present = dict(zip(map(id, waiting), waiting, strict=True))
        if len(present) != len(waiting):
            return None
        objects, workloads = self.objects, self.workload
        for gone in objects.keys() - present.keys():
            workload = objects.pop(gone)
            if workloads.get(workload.id) is workload:
                del workloads[workload.id]
                self._leave(workload)
        came = [present[key] for key in present.keys() - objects.keys()]
        for workload in came:
            objects[id(workload)] = workload
            if workload.id in workloads:  # (the same id twice)
                return None
            workloads[workload.id] = workload
        return came

    def _leave(self, workload: Workload) -> None:
        wid = workload.id
        del self.pods[wid]
        asks = self.asked.pop(wid)
        asks.leave(workload)
        if not asks.members:
            del self.classes[asks.key]


class _Keys:
    """The walk's order keys (`order_key`) of queues (a project's or a department's, across
    pools) per need. A key stands while the queues' allocations do (fair shares, deserved
    quotas and ages are the cycle's): a project's change only when it places, its
    department's when one of its projects does. Most turns at KAI's scale are refused and
    change neither, and a project's workloads ask one of a few needs."""

    def __init__(self, queues: dict[str, list[Queue]], capacity: list[int]):
        self.queues = queues
        self.capacity = capacity
        self.known: dict[str, dict[tuple, tuple]] = {name: {} for name in queues}

    def of(self, name: str, need: tuple[int, ...]) -> tuple:
        known = self.known[name]
        key = known.get(need)
        if key is None:
            key = known[need] = order_key(self.queues[name], need, self.capacity)
        return key

    def moved(self, name: str) -> None:
        """The queues' allocations changed: their keys are worked out anew."""
        self.known[name].clear()


_WORKLOAD_ID = itemgetter(1)  # of a `_told_order` key
_ORDER = itemgetter(0)  # of gang walks' turns


_NOTHING: frozenset = frozenset()  # `_turns` in the lending walks: no turn goes by


# The first walks' refusal of room lent above a fair share (never a pending reason: the lending
# walks try the workload again).
_LENDS: reasons.Reason = (PendingCode.OVER_FAIR_SHARE, "lent once every queue had its turn")
_UNKNOWN: reasons.Reason = (PendingCode.NO_FITTING_NODE, "not yet asked")  # `_may_place`
# The first walks' "no room" (its sentence, which reads the pool, is left to the lending walks).
_UNSAID: reasons.Reason = (PendingCode.NO_FITTING_NODE, "")


def quota_refusal(workload: Workload, queue: Queue, vector: list[int], pods: int
                  ) -> reasons.Reason | None:
    """Would `pods` more pods take the queue or its department over a limit, or, for a
    non-preemptible workload, over deserved?"""
    for q in queue.chain():
        for r in (GPU, CPU, MEMORY):
            need = vector[r] * pods
            if not need:
                continue
            if q.limit[r] != UNLIMITED and q.allocated[r] + need > q.limit[r]:
                return reasons.over_limit(q, r, need)
            if (not workload.preemptible and q.managed[r]
                    and q.allocated_np[r] + need > q.deserved[r]):
                return reasons.non_preemptible(q, r, need)
    return None


def _pod_blocked(pool, request: Request) -> list:
    """The ready nodes of the pool that could take one pod of the request now but for their
    maximum number of pods."""
    out: list = []
    if not pool.pods_full:
        return out
    for node in pool.nodes:
        if node.pod_room:
            continue
        milli = None
        if request.fraction:
            milli = milli_of(node, request.portion, request.memory)
            if milli is None:
                continue
        if node.could_hold(request.devices, milli, request.cpu, request.mem):
            out.append(node)
    return out


def _host_short(pool, request: Request) -> tuple[int, int, int, int] | None:
    """When some ready nodes of the pool have the GPUs one pod asks for but none has its CPU
    and memory as well: (those nodes, how many lack CPU, the most CPU millicores and the
    most MiB of memory free on them); else None, the GPUs are what is missing."""
    devices = request.devices
    if devices and not request.fraction and pool.whole_fit_count(devices) == 0:
        return None  # no node has the devices free: the usual case, answered at once
    gpu_room = lacking_cpu = most_cpu = most_mem = 0
    cpu, mem = request.cpu, request.mem
    # (what the request asks, read once: a fraction's reason walks every node of the pool)
    fraction, portion, memory = request.fraction, request.portion, request.memory
    for node in pool.nodes:
        if fraction:
            milli = portion if portion is not None else milli_of(node, None, memory)
            if milli is None:
                continue
            if devices == 1:  # a whole free device, or a partly used one with room enough
                if not (node.whole or (node.partial_free and max(node.partial_free) >= milli)):
                    continue
            elif sum(1 for u in node.used if u + milli <= FULL) < devices:
                continue
        elif not (node.whole >= devices if node.gpus else devices == 0):
            continue
        if node.free_cpu >= cpu and node.free_mem >= mem:
            return None  # room on this one: something else kept the pod off it
        gpu_room += 1
        lacking_cpu += node.free_cpu < cpu
        most_cpu = max(most_cpu, node.free_cpu)
        most_mem = max(most_mem, node.free_mem)
    return (gpu_room, lacking_cpu, most_cpu, most_mem) if gpu_room else None


def _swap_short(pool, request: Request) -> str | None:
    """A one-device fraction that no device of the pool's swap-capable nodes could take even
    by swapping: why, with the numbers of the node that came closest (the most swap host
    memory left); None when the pool has no such node."""
    if not pool.swap_nodes or not request.fraction or request.devices != 1:
        return None
    best = None
    for node in pool.swap_nodes:
        fit = pool.swap_fit(node, request.portion, request.memory)
        if fit is None:
            continue
        if fit.why is not None:
            return fit.why
        if best is None or fit.host_left_mib > best[0]:
            milli = milli_of(node, request.portion, request.memory) or 0
            best = (fit.host_left_mib, node, milli * node.dev_memory // FULL)
    if best is None:
        return None
    left, node, need = best
    return short_message(need, node.name, left, node.swap.host_mib)


def _max_pods(nodes: list) -> int | None:
    """The nodes' common maximum of pods, None when it differs (or there are none)."""
    limits = {n.max_pods for n in nodes}
    return limits.pop() if len(limits) == 1 else None
