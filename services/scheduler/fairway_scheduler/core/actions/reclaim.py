"""The reclaim action: a queue takes back GPUs that queues above their share borrowed.

Fairness is counted in GPUs, the resource queues contend for; CPU and memory quotas only limit.
The rules, level by level (a victim is judged where its queue's ancestry and the reclaimer's
part: two projects of one department compare as projects, anything else as departments or
department-less projects):

- **The reclaimer** (its project) must stay within its fair share or within its deserved quota
  once the workload runs; a non-preemptible one within its deserved quota (as `allocate`).
  Taking from another department, its department must stay within its share as well.
- **A victim** is acceptable by either of two strategies, judged on its queue before the
  victim leaves (after the victims taken before it): *guarantee deserved quota*, the
  reclaimer's queue stays within its deserved quota with the workload and the victim's queue
  holds more than its own deserved quota (also where the deserved quotas of a pool add up to
  more than it has); or *maintain fair share*, its queue holds more than its allocatable share
  (`min(limit, max(deserved, fair share))`), and may end below its fair share.
- **Saturation**: a victim taken only to maintain fair shares must leave its queue at least as
  saturated (allocated / fair share) as the reclaimer's ends, times the multiplier setting;
  without it the queue pushed below its share would take from the next queue just above its
  own, and that one from the next: one eviction handed on cycle after cycle.

Victims come from the most over-served queues first (departments, then projects), lowest
priority and newest first inside one; elastic pods above a workload's minimum before gangs;
those that leave their queue its share before the others. A single pod's room is made on one
node at a time (`_Reclaim.on_one_node`); a gang's across the pool.
"""

from collections.abc import Callable, Iterator, Set

from fairway_scheduler.core import reasons
from fairway_scheduler.core.actions.solver import (
    Solver,
    Unit,
    evicted_pods,
    label,
    top,
)
from fairway_scheduler.core.framework import Request, gang_need, pod_request, sized_apart
from fairway_scheduler.core.model import Workload
from fairway_scheduler.core.nodes import Domain, NodeState, PoolNodes
from fairway_scheduler.core.queues import GPU, MILLI, Queue

MOVE_NODES = 4  # per reclaim: nodes tried only because work there could be moved aside


def reclaim(solver: Solver, workload: Workload, pool: str) -> bool:
    """Reclaim room for `workload` in `pool`; True when it was placed."""
    session = solver.session
    pool_nodes = session.pools.get(pool)
    if pool_nodes is None:
        return False
    reclaimer = session.queues.project(workload.project, pool)
    gang = max(1, workload.min_pods - session.held.get(workload.id, 0))
    request = session.requests[workload.id]
    pods = solver.waiting[workload.id][:gang]
    # Its class: what the answer below depends on besides the queues, when every pod asks
    # alike and no topology pins it. Thousands of waiting workloads fall in a few hundred
    # classes; a class found hopeless is not worked out again (`Solver.hopeless`).
    alike = request.master is None and request.topology is None
    cls = (workload.project, pool, request, gang, len(pods), workload.preemptible)
    if alike:
        known = solver.hopeless.get(cls)
        if known is not None and (known == _FOR_GOOD or known == reclaimer.allocated[GPU]):
            return False
    found = _reclaim(solver, workload, pool_nodes, reclaimer, request, gang, pods)
    if alike and found is not None:
        solver.hopeless[cls] = found
    return found is None


_FOR_GOOD = -1  # `Solver.hopeless`: for the rest of the cycle


def _reclaim(solver: Solver, workload: Workload, pool_nodes: PoolNodes, reclaimer: Queue,
             request: Request, gang: int, pods: list[str]) -> int | None:
    """None when the workload was placed; else until when nothing would place one of its
    class: for good (this cycle), or while its project holds the milli-GPUs it holds now
    (it would end above its share: room taken from it could change that)."""
    session, pool = solver.session, pool_nodes.name
    need = gang_need(request, workload, pods, pool_nodes.max_dev_memory)[GPU]
    if not need:
        return _FOR_GOOD
    if not may_reclaim(reclaimer, need):
        return reclaimer.allocated[GPU]
    # Another workload of the project asking alike found nothing this cycle: nor would it.
    key = ("reclaim", workload.project, pool, request, gang, workload.preemptible,
           sized_apart(request, workload, pods),
           workload.id if request.topology is not None and session.held.get(workload.id, 0)
           else None)
    if key in solver.failed:
        return _FOR_GOOD
    if _Reclaim(solver, workload, pool, reclaimer, need, gang).run():
        return None
    solver.failed.add(key)
    return _FOR_GOOD


class _Reclaim:
    """One reclaim attempt's rules, for `Solver.attempt`."""

    def __init__(self, solver: Solver, workload: Workload, pool: str, reclaimer: Queue,
                 need: int, gang: int):
        self.solver, self.workload, self.pool = solver, workload, pool
        self.reclaimer, self.need, self.gang = reclaimer, need, gang
        self.multiplier = max(1.0, solver.settings.reclaimer_saturation_multiplier)
        self.why: dict[str, str] = {}  # victim workload -> the rule that let it go
        self.for_fair_share: set[str] = set()  # victims only "maintain fair share" lets go
        # queues that gave a victim, and queues that then refused one, in this simulation
        self.gave: set[str] = set()
        self.stopped: set[str] = set()
        # a victim's queue that holds no more than its allocatable share gives only while the
        # reclaimer's (or its department) stays within its deserved quota
        deserved = any(q.allocated[GPU] + need <= q.deserved[GPU]
                       for q in (reclaimer, top(reclaimer)))
        self.queues = [q for q in solver.queues_over(pool, deserved)
                       if q is not reclaimer and self.acceptable(q)]

    def run(self) -> bool:
        solver = self.solver
        if not self.queues and not solver.freed:
            return False
        request = solver.session.requests[self.workload.id]
        if self.gang == 1 and solver.waiting[self.workload.id]:
            # one pod: the nodes where that pod, at its own size, fits best
            request = pod_request(request, self.workload, solver.waiting[self.workload.id][0])
        names = {q.name for q in self.queues}
        domains = solver.required_domains(self.workload, self.pool, names.__contains__)
        if domains is not None:
            return self.in_domains(domains)
        if self.gang != 1 or not request.devices:  # a gang of several pods: across the pool
            return solver.attempt(self.workload, self.pool, "reclaim", self.across_pool(),
                                  self.admissible, self.saturation_kept, self.describe)
        return self.on_one_node(request)

    def in_domains(self, domains: list[Domain]) -> bool:
        """A required topology placement: its room is made inside one domain, each domain a
        simulation of its own with the victims that hold pods there (the domain closest to
        having room first)."""
        solver = self.solver
        for domain in domains:
            self.gave.clear()
            self.stopped.clear()
            victims = (u for u in self.across_pool() if solver.in_domain(u, domain))
            if solver.attempt(self.workload, self.pool, "reclaim", victims, self.admissible,
                              self.saturation_kept, self.describe, shape=("domain", domain.key)):
                return True
        return False

    def across_pool(self) -> Iterator[Unit]:
        """Victims that leave their queue its share first, then the others: a queue may end
        below its fair share, but only where nothing gentler makes the room."""
        solver = self.solver
        yield from (u for u in solver.by_queue_order(self.queues, self.pool) if self.gentle(u))
        yield from solver.by_queue_order(self.queues, self.pool)

    def on_one_node(self, request: Request) -> bool:
        """A single pod: its room is made on one node, each node a simulation of its own
        (victims taken on one node never block a better choice on another). First the nodes
        where victims that leave their queue its share suffice, then those where any victim,
        or moving work aside, could make the room; the node closest to having room first.

        Only nodes where a queue that may give holds GPUs can have room made by victims: when
        no work may be moved aside, each round looks at those nodes alone (a few queues may
        give at a time, each on a small part of thousands of nodes), in the same order."""
        solver, workload = self.solver, self.workload
        pool = solver.session.pools[self.pool]
        moving = solver.moves_left > 0 and pool.whole_fit_count(1) > 0
        everywhere = None if not moving else solver.node_order(pool, request, 1)
        if solver.freed and solver.attempt(workload, self.pool, "reclaim", iter(()),
                                           self.admissible, self.saturation_kept,
                                           self.describe, shape="freed"):
            return True
        # What each queue that may give could give at most: everything, or (gentle) what it
        # holds above its allocatable share; a node is simulated only where that covers it.
        most: dict[str, int] = {}
        above: dict[str, int] = {}
        for q in self.queues:
            theirs = self.levels(q)[1]
            most[q.name] = 1 << 62
            above[q.name] = max(0, theirs.allocated[GPU] - theirs.allocatable(GPU))
        if everywhere is not None:
            orders = {True: everywhere, False: everywhere}
        else:
            # the gentle round's queues are some of the other's: its nodes, in the same order
            anyone = solver.node_order(pool, request, 1, solver.gpu_nodes_of(most, self.pool)) or []
            giving = [p for p, m in above.items() if m > 0]
            if len(giving) == len(most):
                orders = {True: anyone, False: anyone}
            else:
                gentle_nodes = solver.gpu_nodes_of(giving, self.pool)
                orders = {True: [e for e in anyone if e[1].idx in gentle_nodes],
                          False: anyone}
        moves_tried = 0
        settled = pool.settled_version()  # attempts that fail here leave it as it is
        units: dict[int, list[Unit]] = {}
        gentle_memo: dict[int, bool] = {}  # nothing changes between the simulations

        def is_gentle(unit: Unit) -> bool:
            found = gentle_memo.get(id(unit))
            if found is None:
                found = gentle_memo[id(unit)] = self.gentle(unit)
            return found

        held_on = solver.held_on
        for gentle in (True, False):
            cap = above if gentle else most
            if not orders[gentle]:
                continue
            # the nodes where its queues held GPUs (as `held_on` answers): elsewhere what they
            # hold is nothing
            nodes = self.holding([p for p, m in cap.items() if m])
            for deficit, node in orders[gentle]:
                held = held_on(node.idx)  # asked of every node in turn, as before
                enough = node.idx in nodes and sum(
                    min(cap[p], m) for p, m in held.items() if p in cap) >= deficit
                # Moving work aside may make the room where victims alone cannot: tried on
                # the few nodes closest to having room.
                movable = (not enough and not gentle and solver.moves_left > 0
                           and moves_tried < MOVE_NODES and pool.whole_fit_count(1) > 0)
                if not (enough or movable):
                    continue
                moves_tried += movable
                on = units.get(node.idx)
                if on is None:
                    on = units[node.idx] = solver.units_on(node, self.pool, settled)
                victims = [u for u in on if is_gentle(u)] if gentle else self.by_need(
                    on, node, deficit, is_gentle)
                if not movable and self.may_give(victims, node) < deficit:
                    continue  # what may go from it could not make the room
                self.gave.clear()
                self.stopped.clear()
                if solver.attempt(workload, self.pool, "reclaim", iter(victims),
                                  self.admissible, self.saturation_kept, self.describe,
                                  shape=(node.idx, gentle)):
                    return True
                if not gentle and self.gave & self.stopped and self.smallest_first(node,
                                                                                   victims):
                    return True
        return False

    def holding(self, projects: list[str]) -> Set[int]:
        """The nodes where the projects' preemptible workloads, running in any pool, held
        GPUs when `on_node` was first asked: every node whose `held_on` names one of them."""
        solver = self.solver
        found = [solver.gpu_nodes_of(projects, pool) for pool in solver.session.pools]
        return found[0] if len(found) == 1 else set().union(*found)

    def smallest_first(self, node: NodeState, victims: list[Unit]) -> bool:
        """The node's victims again, the fewest GPUs first. A queue may give while it is over
        its share or deserved quota before each victim goes: taken largest first, its first
        victim can bring it down to the line and stop the second, where the smaller one first
        and then the larger would both go and make the room (a queue holding 12 GPUs with
        10 deserved gives 1 and then 2, but not 2 and then 1). Tried only where a queue that
        gave a victim then refused one."""
        if len(victims) < 2:
            return False
        solver = self.solver

        def here(unit: Unit) -> int:
            now = solver.current(unit, [])
            return 0 if now is None else sum(h.gpu for h in now.holds if h.idx == node.idx)

        order = sorted(victims, key=here)
        if order == victims:
            return False
        return solver.attempt(self.workload, self.pool, "reclaim", iter(order),
                              self.admissible, self.saturation_kept, self.describe,
                              shape=(node.idx, "smallest first"))

    def queue(self, unit: Unit) -> Queue:
        return self.solver.session.queues.project(unit.workload.project, self.pool)

    def levels(self, victim: Queue) -> tuple[Queue, Queue]:
        """(the reclaimer's queue, the victim's queue) where their ancestries part."""
        if victim.parent is not None and victim.parent is self.reclaimer.parent:
            return self.reclaimer, victim
        return top(self.reclaimer), top(victim)

    def acceptable(self, victim: Queue) -> bool:
        return self.strategy(victim) is not None

    def strategy(self, victim: Queue) -> str | None:
        """Which strategy lets the victim's queue give up room now: "deserved" (guarantee
        deserved quota), "fair" (maintain fair share), or None."""
        mine, theirs = self.levels(victim)
        if mine is not self.reclaimer and not may_reclaim(mine, self.need):
            return None  # the reclaimer's department would end above its share
        if (mine.allocated[GPU] + self.need <= mine.deserved[GPU]
                and theirs.allocated[GPU] > theirs.deserved[GPU]):
            return "deserved"
        if theirs.allocated[GPU] > theirs.allocatable(GPU):
            return "fair"
        return None

    def admissible(self, unit: Unit) -> bool:
        victim = self.queue(unit)
        if victim is self.reclaimer:
            return False
        strategy = self.strategy(victim)
        if strategy is None or (strategy == "fair" and not self.less_saturated(unit, victim)):
            self.stopped.add(victim.name)
            return False
        self.gave.add(victim.name)
        self.why[unit.workload.id] = self.because(victim)
        if strategy == "fair":
            self.for_fair_share.add(unit.workload.id)
        else:
            self.for_fair_share.discard(unit.workload.id)
        return True

    def gentle(self, unit: Unit) -> bool:
        """Its queue keeps at least its allocatable share without it."""
        now = self.solver.current(unit, [])
        _, theirs = self.levels(self.queue(unit))
        return now is not None and theirs.allocated[GPU] - now.gpu >= theirs.allocatable(GPU)

    def by_need(self, units: list[Unit], node: NodeState, deficit: int,
                gentle: Callable[[Unit], bool]) -> list[Unit]:
        """The node's units as victims once gentle ones did not do: one that makes the room
        alone first (the smallest such), then the gentle ones, then the rest (a queue judged
        after each victim may not give a second time what one larger victim would give)."""
        def gives(unit: Unit) -> int:
            now = self.solver.current(unit, [])
            return 0 if now is None else sum(h.gpu for h in now.holds if h.idx == node.idx)

        ranked = []
        for position, unit in enumerate(units):
            size = gives(unit)
            alone = size >= deficit
            ranked.append(((not alone, size if alone else 0, not gentle(unit), position),
                           unit))
        ranked.sort(key=lambda e: e[0])
        return [unit for _, unit in ranked]

    def may_give(self, units: list[Unit], node: NodeState) -> int:
        """The milli-GPUs on the node of those units whose queues may give now."""
        given = 0
        for unit in units:
            now = self.solver.current(unit, [])
            if now is not None and self.acceptable(self.queue(now)):
                given += sum(h.gpu for h in now.holds if h.idx == node.idx)
        return given

    def less_saturated(self, unit: Unit, victim: Queue) -> bool:
        """Without the unit, its queue would still be at least as saturated as the
        reclaimer's with the workload (the check `saturation_kept` makes at the end, made
        early: victims taken later only lower it)."""
        mine, theirs = self.levels(victim)
        if not theirs.fair[GPU]:
            return True
        after = mine.allocated[GPU] + self.need
        return self.multiplier * _ratio(after, mine.fair[GPU]) <= _ratio(
            theirs.allocated[GPU] - unit.gpu, theirs.fair[GPU])

    def saturation_kept(self, victims: list[Unit]) -> bool:
        """Where a victim goes only to maintain fair shares, its queue must not end less
        saturated (allocated / fair share) than the reclaimer's at that level, the
        reclaimer's saturation times the multiplier setting (victims gone, the workload
        counted). Without it a victim's queue pushed below its share would take back from
        the next queue just above its own, and that one from the next: one eviction handed
        on cycle after cycle. Guaranteeing deserved quota needs no such check."""
        for unit in victims:
            if unit.workload.id not in self.for_fair_share:
                continue
            mine, theirs = self.levels(self.queue(unit))
            if not theirs.fair[GPU]:
                continue
            after = mine.allocated[GPU] + self.need
            if self.multiplier * _ratio(after, mine.fair[GPU]) > _ratio(
                    theirs.allocated[GPU], theirs.fair[GPU]):
                return False
        return True

    def because(self, victim: Queue) -> str:
        _, theirs = self.levels(victim)
        what = "project" if theirs.kind == "project" else "department"
        held = reasons.number(theirs.allocated[GPU] / MILLI)
        share = theirs.allocatable(GPU)
        if theirs.allocated[GPU] > share:
            kind = "fair share" if share == theirs.fair[GPU] else "share"
            bound = f"more than its {kind} of {reasons.number(share / MILLI)} GPUs"
        else:
            bound = (f"more than its deserved {reasons.number(theirs.deserved[GPU] / MILLI)} "
                     "GPUs")
        reclaimer = self.reclaimer
        within = ("fair share" if reclaimer.allocated[GPU] + self.need <= reclaimer.fair[GPU]
                  else "deserved quota")
        return (f"{what} {theirs.name} holds {held} GPUs in pool {self.pool}, {bound}, and "
                f"project {self.workload.project} needs them back within its {within}")

    def describe(self, unit: Unit) -> str:
        return (f"{self.why[unit.workload.id]}: {evicted_pods(unit)} "
                f"({unit.gives()}) make room for {label(self.workload)}")


def may_reclaim(reclaimer: Queue, need: int) -> bool:
    """The reclaimer's project stays within its fair share or its deserved quota with `need`
    more GPUs (milli-GPUs)."""
    after = reclaimer.allocated[GPU] + need
    return after <= reclaimer.fair[GPU] or after <= reclaimer.deserved[GPU]


def _ratio(allocated: int, fair: int) -> float:
    return allocated / fair if fair else float("inf")
