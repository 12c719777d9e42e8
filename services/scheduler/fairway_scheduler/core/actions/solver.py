"""The disruptive actions' shared solver: release victims and retry.

The `Solver` indexes, once per cycle, the running pods the disruptive actions (consolidate,
reclaim, preempt, stale-gang) may take, and records the evictions they decide. Reclaim and
preempt go through `Solver.attempt`, a simulation on one `Statement`: victims' pods are evicted
one unit at a time (an elastic workload's pods above its minimum first, one by one; then whole
gangs), and after each eviction the preemptor's gang is tried; once it fits, victims whose room
it did not need are taken back (pruned), the action's rules are checked on the result, and only
then is the statement kept. Otherwise it is rolled back and nothing happens. So a disruption
never evicts for a workload it cannot place, never a non-preemptible workload, and never more
than it needs. Consolidate evicts and places again on a statement of its own, kept or rolled
back the same way.

Placements made here are pipelined: they use room the victims still hold until their pods are
gone. A shell that evicts instantly (the simulator by default) binds them at once; the service
evicts, lets the preemptor wait (`WaitingForPreemption`), and binds it when `allocate` finds the
room free. Pods a preemption decision is already evicting (`Workload.evicting_pods`) are free
room from the start, so a later cycle does not evict again for the same preemptor.

A pool's minimum guaranteed runtime protects a workload from reclaim, preempt and consolidate
until it has run that long.
"""

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass

from fairway_scheduler.core import reasons, topology
from fairway_scheduler.core.actions.allocate import quota_refusal
from fairway_scheduler.core.actions.runs import WaitingRuns, order
from fairway_scheduler.core.framework import (
    Hold,
    Request,
    Session,
    Statement,
    gang_need,
    pod_request,
    request_of,
    sized_apart,
    too_large,
)
from fairway_scheduler.core.framework.holds import HoldIndex, victim_order
from fairway_scheduler.core.model import Eviction, PendingCode, PendingReason, Workload
from fairway_scheduler.core.nodes import FULL, Domain, NodeState, PoolNodes, milli_of, natural
from fairway_scheduler.core.queues import CPU, GPU, Queue, order_key


@dataclass(slots=True)
class Unit:
    """What one eviction step takes away: an elastic pod, or a workload's (remaining) gang."""

    workload: Workload
    holds: list[Hold]
    surplus: bool

    @property
    def gpu(self) -> int:
        return sum(h.gpu for h in self.holds)

    def gives(self) -> str:
        """What its eviction frees, for sentences: its GPUs, or a CPU-only one's cores."""
        gpu = self.gpu
        if gpu or not self.holds:
            return reasons.resource(GPU, gpu)
        return reasons.resource(CPU, sum(h.cpu for h in self.holds))


@dataclass(slots=True)
class Run:
    """Waiting workloads that hold nothing and ask alike (`preemptor_class`) in the same
    pools, by submission time and id: in `preemptors`' order they share their key's first
    part (`prefix`, the disruptive action's), so theirs are `key(i)`."""

    cls: tuple | None  # (`preemptor_class`)
    pools: tuple[str, ...]
    members: list[Workload]
    prefix: tuple

    def key(self, i: int) -> tuple:
        member = self.members[i]
        return (*self.prefix, member.submitted_at, member.id)


def preemptor_class(session: Session, solver: "Solver", workload: Workload) -> tuple | None:
    """What a disruptive action reads of a waiting workload besides the cycle's state, when
    that is all it reads: its request (shared by those that ask alike:
    `framework.requests_of`), project, preemptibility, priority, minimum and how many pods
    wait. None where it reads more: a workload that holds pods (its pods, its nodes), a
    master sized apart (its pods' names), a topology placement (its nodes)."""
    request = session.requests[workload.id]
    if (request.master is not None or request.topology is not None
            or session.held.get(workload.id, 0)):
        return None
    return (id(request), workload.project, workload.preemptible, workload.priority,
            workload.min_pods, len(solver.waiting[workload.id]))


class Solver:
    """The running pods of one cycle as victims: indexed once, evicted through statements."""

    def __init__(self, session: Session):
        self.session = session
        self.settings = session.snapshot.disruption
        self.pool_config = {p.name: p for p in session.snapshot.pools}
        # running pods on ready nodes, per workload (those of workloads placed more this
        # cycle left out); pods being evicted already, free room from the start
        self.holds: dict[str, list[Hold]]
        self.freed: list[Hold]
        # per (project, pool): the workloads running there (read only; some may be gone)
        self.by_queue: dict[tuple[str, str], dict[str, None]]
        self.index = self._index_holds()
        # Workloads whose holds changed this cycle (left out, evicted, moved): the index's
        # sums are theirs as the cycle began. `_at_first_ask`: theirs when `on_node` was
        # first asked (None: not yet); `_touched_on`: by the nodes they held on.
        self._touched: dict[str, None] = {}
        self._touched_on: dict[int, list[str]] = {}
        self._touched_keys: set[tuple[str, str]] = set()  # their (project, pool)
        self._at_first_ask: dict[str, list[Hold] | None] | None = None
        # queues whose victim units `units_on` ranked without building them: built before
        # one of their workloads changes (see `_rank_units_on`)
        self._units_due: set[tuple[str, str]] = set()
        for wid in {p.workload_id for p in session.placements}:
            self.placed_more(wid)
        # their victim units, built once per cycle in victim order and walked with a cursor
        # (evicted ones are skipped)
        self.queue_units: dict[tuple[str, str], list[Unit]] = {}
        self.units_of: dict[str, list[tuple[int, Unit]]] = {}  # per workload, with position
        self._on_node: dict[int, list[str]] = {}  # node -> workloads running there
        # (project, pool) -> nodes it held GPUs on
        self._gpu_nodes_of: dict[tuple[str, str], set[int]] = {}
        self._held_on: dict[int, dict[str, int]] = {}
        self._units_on: dict[int, tuple[int, list[Unit]]] = {}  # see `units_on`
        # `node_order`'s orders per pool and request shape, and what changed nodes' room since
        # they were made: the nodes of kept evictions (in order) and of kept placements
        self._node_orders: dict[tuple, _NodeOrder] = {}
        self._evicted_on: list[int] = []
        self._queues_in: dict[str, list[Queue]] = {}
        self._over_in: dict[tuple[str, bool], tuple[int, list[Queue]]] = {}  # `queues_over`
        self.cursor: dict[tuple[str, str], int] = {}
        # the lowest priority among a queue's victim units, when it has any
        self.lowest_priority: dict[tuple[str, str], int | None] = {}
        self._lowest_seen: dict[tuple[str, str], int | None] = {}  # see `live_units_below`
        self.movers: dict[str, dict[int, list[Hold]]] = {}  # per pool, until an eviction
        for hold in self.freed:
            session.release(hold)
        self.evicted: dict[str, list[str]] = {}  # this cycle's victims -> pods evicted
        self.stays: dict[str, list[Hold]] = {}  # moved workloads -> the pods they keep
        self.waiting: dict[str, list[str]] = {}  # see `_find_waiting`
        self._capacity: list[int] = []  # the cluster's, for `order_key` (found with `waiting`)
        self._runs: list[Run] | None = None  # see `preemptor_runs`
        # its last answer, and `Session.commits` then
        self._runs_answer: tuple[int, tuple[list[Run], list[tuple[tuple, Workload]]]] | None = None
        self._kept_runs: WaitingRuns | None = None
        self._run_at: dict[tuple, Run] = {}  # this cycle's, by `runs.alike`
        self._run_of: dict[str, Run] = {}  # of the members read afresh
        self._singles: list[Workload] = []
        self._placements_seen = 0
        self._keys: dict[str, tuple] = {}  # see `preemptors`
        self._orders: dict[tuple, tuple] = {}
        self.failed: set[tuple] = set()  # attempt shapes that found no room this cycle
        # reclaim's classes of waiting workloads that found no room, and until when (see
        # `reclaim.reclaim`)
        self.hopeless: dict[tuple, int] = {}
        self.moves_left = self.settings.max_pods_moved

    def _index_holds(self) -> HoldIndex:
        """Every pod held on a ready node of a known pool by a workload of the snapshot, in
        the ledger's order: free room when it is being evicted, else a victim's (unless its
        workload was placed more this cycle). From the ledger's kept index (made the first
        time), brought up to this snapshot: a cycle costs what changed, not every pod."""
        session = self.session
        ledger = session.ledger
        index = ledger.index
        if not isinstance(index, HoldIndex):
            index = HoldIndex(ledger)
            ledger.index = index
        usable = {name: (node.idx, node.pool) for name, node in session.nodes.items()
                  if node.ready and node.pool in session.pools}
        index.sync(session.snapshot, usable)
        # (`dict.copy`, not `dict()`: a kept table has gaps where entries were deleted, and
        # only `copy` clones such a table whole instead of inserting 100,000 entries anew)
        self.holds = index.holds.copy()
        freed = sorted((e for entries in index.freed.values() for e in entries),
                       key=lambda e: e[0])
        self.freed = [hold for _, hold in freed]
        self.by_queue = index.queue_wids
        return index

    def touch(self, wid: str) -> None:
        """The workload's holds change (it is left out, evicted or moved), now."""
        key = self._built_units(wid)  # its queue's victim units as they are before it changes
        if wid in self._touched:
            return
        self._touched[wid] = None
        holds = self.index.holds.get(wid)
        if holds and key is not None:
            self._touched_keys.add(key)
            for idx in {h.idx for h in holds}:
                self._touched_on.setdefault(idx, []).append(wid)

    def placed_more(self, wid: str) -> None:
        """The workload was placed more this cycle (its gang, or pods above its minimum): no
        victim, nor moved, for the rest of it. Its new pods are not among its holds: a move
        of its running ones would not know where they went (a required topology placement
        split across domains), and taking them would undo the room just made for it."""
        if wid in self.holds:
            self.touch(wid)
            del self.holds[wid]

    def _built_units(self, wid: str) -> tuple[str, str] | None:
        """The workload's queue (project, pool), its victim units built if they are due
        (`_rank_units_on`)."""
        holds = self.index.holds.get(wid)
        if not holds:
            return None
        key = (holds[0].workload.project, holds[0].pool)
        if key in self._units_due:
            self._units_due.discard(key)
            self._units(*key)
        return key

    def preemptors(self) -> list[Workload]:
        """Workloads with pods waiting that a disruption could place: gangs still waiting
        first, then pods above a running workload's minimum (one per workload per cycle); each
        in queue order (`queues.order_key` with the pods it would place), then priority, then
        submission time (`preemptor_key`). `preemptor_runs` gives the same workloads in runs."""
        self._find_waiting()
        unschedulable, evicted, waiting = self.session.unschedulable, self.evicted, self.waiting
        out = [w for w in self.session.waiting  # the snapshot's workloads with pods waiting
               if w.id not in unschedulable and w.id not in evicted and waiting[w.id]]
        out.sort(key=self.preemptor_key)
        return out

    def _find_waiting(self) -> None:
        """Once a cycle: each waiting workload's pods still waiting after allocation
        (allocation's lists, when it ran: one for every workload with pods waiting)."""
        if self._capacity:
            return
        session = self.session
        if session.pods_waiting is not None:
            self.waiting = session.pods_waiting
        else:
            placed = {(p.workload_id, pod.pod) for p in session.placements for pod in p.pods}
            self.waiting = {w.id: sorted((pod for pod in w.waiting_pods
                                          if (w.id, pod) not in placed), key=natural)
                            for w in session.waiting}
        self._capacity = [max(sum(c[r] for c in session.capacity().values()), 1)
                          for r in range(3)]

    def preemptor_key(self, w: Workload) -> tuple:
        """A waiting workload's place in the disruptive actions' order, as the cycle stands:
        (whether its gang runs, its queue's `order_key` with the pods it would place,
        -priority, submission time, id); unique.

        Asked for every waiting workload once per disruptive action: a workload's key is kept
        while what it holds, what it has waiting and its queue's allocation stand (fair shares
        and deserved quotas are the cycle's). Workloads of one project, pool and request share
        their queue's order (thousands of waiting workloads, a few dozen shapes)."""
        session = self.session
        held = session.held.get(w.id, 0)
        waiting = self.waiting[w.id]
        known = self._keys.get(w.id)
        if known is not None and known[0] == held and known[1] == len(waiting):
            if known[2].allocated == known[3]:
                return known[4]
            shape, queue = known[5], known[2]
        else:
            pool = session.target_pools(w)[0]
            pods = 1 if held >= w.min_pods else w.min_pods - held
            request = session.requests[w.id]
            apart = sized_apart(request, w, waiting[:pods])
            shape = (w.project, pool, request, pods, apart)
            queue = session.queues.project(w.project, pool)
        allocated = list(queue.allocated)
        order = self._orders.get((shape, *allocated))
        if order is None:
            pool, request, pods = shape[1], shape[2], shape[3]
            if shape[4]:
                need = gang_need(request, w, waiting[:pods], self._dev_memory(pool))
            else:
                need = [v * pods for v in request.vector(self._dev_memory(pool))]
            order = self._orders[(shape, *allocated)] = order_key([queue], need,
                                                                  self._capacity)
        out_key = (held >= w.min_pods, order, -w.priority, w.submitted_at, w.id)
        self._keys[w.id] = (held, len(waiting), queue, allocated, out_key, shape)
        return out_key

    def preemptor_runs(self) -> tuple[list[Run], list[tuple[tuple, Workload]]]:
        """`preemptors` as runs, for one disruptive action: workloads that hold nothing and
        ask alike (`preemptor_class`) in the same pools, each run in `preemptors`' order (they
        share their key but for submission time and id: `Run.key`), and the others one by one
        with their keys. Runs are found once a cycle (`_find_runs`); a workload placed since
        leaves its run (then what it holds sets it apart). An action after one that kept no
        statement gets the same answer: nothing it reads changed (what runs hold, what waits,
        what was evicted and the queues' allocations change only with a kept statement)."""
        session = self.session
        if self._runs_answer is not None and self._runs_answer[0] == session.commits:
            return self._runs_answer[1]
        self._find_waiting()
        if self._runs is None:
            self._find_runs()
            self._placements_seen = len(session.placements)
        # workloads placed since (by an earlier action): out of their runs, one by one now
        kept = self._kept_runs
        left: dict[int, set[str]] = {}  # by `id()` of their runs
        for p in session.placements[self._placements_seen:]:
            wid = p.workload_id
            run = self._run_of.pop(wid, None)
            if run is None and kept is not None:
                key = kept.key.get(wid)
                run = self._run_at.get(key) if key is not None else None
            if run is not None:
                left.setdefault(id(run), set()).add(wid)
        self._placements_seen = len(session.placements)
        runs = self._runs
        assert runs is not None  # (found above)
        for run in runs:
            gone = left.get(id(run))
            if gone:  # (one looked up by its kept class may have left its run already)
                ids = [m.id for m in run.members]
                self._singles += [run.members[ids.index(wid)] for wid in gone if wid in ids]
                run.members = [m for m in run.members if m.id not in gone]
        evicted, waiting = self.evicted, self.waiting
        singles = [(self.preemptor_key(w), w) for w in self._singles
                   if w.id not in evicted and waiting[w.id]]
        runs_now = []
        for run in runs:
            if run.members:
                run.prefix = self.preemptor_key(run.members[0])[:3]
                runs_now.append(run)
        self._runs_answer = (session.commits, (runs_now, singles))
        return runs_now, singles

    def _find_runs(self) -> None:
        """This cycle's runs, from the waiting workloads the ledger keeps grouped by what they
        ask (`runs.WaitingRuns`): a group is a run but for its workloads that hold a pool now
        (what they hold and where may set them apart) or cannot be placed; those, and the
        workloads kept apart, are read one by one, as every waiting workload is when two
        share an id."""
        session = self.session
        kept = session.ledger.runs
        if not isinstance(kept, WaitingRuns):
            kept = session.ledger.runs = WaitingRuns()
        unschedulable = session.unschedulable
        runs: dict[tuple, Run] = {}
        afresh: Iterable[Workload] = session.waiting
        if kept.sync(session):
            self._kept_runs = kept
            keys = kept.key.keys()  # held: in the ledger, or placed (a pool) this cycle
            held_pool = session.held_pool
            changed = set(session.waiting_holding)
            changed.update(wid for p in session.placements
                           if (wid := p.workload_id) in keys and wid in held_pool)
            out = changed | (keys & unschedulable.keys())
            cut = {kept.key[wid] for wid in out}
            for key, group in kept.groups.items():
                # the kept group itself, read only (copied below where a workload joins it)
                members = [m for m in group if m.id not in out] if key in cut else group
                if members:
                    cls = preemptor_class(session, self, members[0])
                    pools = session.target_pools(members[0])
                    runs[(cls, pools)] = self._run_at[key] = Run(cls, pools, members, ())
            afresh = [*kept.apart.values(),
                      *(kept.workload[wid] for wid in changed if kept.key[wid] is not None)]
        # a kept group (in order) that a workload joins is copied, and the workload put in its
        # place (a few of them among thousands); a run made here is sorted once it is whole
        grown: set[int] = set()  # by `id()`: the runs this cycle owns (copied or made)
        made: dict[int, Run] = {}  # by `id()`: those made here
        for w in afresh:
            if w.id in unschedulable:
                continue
            cls = preemptor_class(session, self, w)
            if cls is None:
                self._singles.append(w)
                continue
            pools = session.target_pools(w)
            run = runs.get((cls, pools))
            if run is None:
                run = runs[(cls, pools)] = Run(cls, pools, [], ())
                made[id(run)] = run
                grown.add(id(run))
            elif id(run) not in grown:
                run.members = list(run.members)  # its own: it grows
                grown.add(id(run))
            if id(run) in made:
                run.members.append(w)
            else:
                insort(run.members, w, key=order)
            self._run_of[w.id] = run
        for run in made.values():
            run.members.sort(key=order)
        self._runs = list(runs.values())

    def _dev_memory(self, pool: str) -> int:
        pool_nodes = self.session.pools.get(pool)
        return pool_nodes.max_dev_memory if pool_nodes else 0

    # the simulation ---------------------------------------------------------------------
    def attempt(self, workload: Workload, pool_name: str, reason: str,
                candidates: Iterator[Unit], admissible: Callable[[Unit], bool],
                valid: Callable[[list[Unit]], bool], describe: Callable[[Unit], str],
                shape: object = None) -> bool:
        """Evict `admissible` candidates one unit at a time until the preemptor's gang fits in
        the pool, prune, check `valid` on the victims; keep all of it, or none. `describe`
        says why a victim goes; `shape` tells apart attempts that may fare differently."""
        session = self.session
        pool = session.pools[pool_name]
        if not pool.nodes:
            return False
        request = session.requests[workload.id]
        if too_large(pool, request):
            return False
        gang = max(1, workload.min_pods - session.held.get(workload.id, 0))
        waiting = self.waiting[workload.id]
        if len(waiting) < gang:
            return False
        key = (reason, workload.project, pool_name, request, gang, workload.preemptible, shape,
               sized_apart(request, workload, waiting[:gang]),
               workload.id if request.topology is not None and session.held.get(workload.id, 0)
               else None)
        if key in self.failed:
            return False
        statement = Statement(session, pool)
        movers: list[Unit] = []  # moved aside during the simulation (placed again at once)
        moves_left = self.moves_left
        released = self._evict_until_placed(statement, workload, request, gang, candidates,
                                            admissible, movers)
        if released is not None:
            # Prune: take back every victim whose room the preemptor did not take (newest
            # first, so the one that made it fit is the last to be tried).
            for unit in reversed(released[:-1]):
                if self.take_back(statement, unit):
                    released.remove(unit)
        if released is None or not valid(released):
            statement.rollback()
            self.moves_left = moves_left
            self.failed.add(key)
            return False
        statement.pipeline(workload)
        moved = self._move_aside(statement, released)
        statement.commit()
        del waiting[:gang]
        self.placed_more(workload.id)
        for unit in movers:
            self.record_move(unit, pool_name, workload, reason)
        for unit in released:
            if unit in moved:
                self.record_move(unit, pool_name, workload, reason)
            else:
                self.record_eviction(unit, reason, workload, describe(unit))
        self.waiting_for_preemption(workload, pool_name, movers + released)
        return True

    def _move_aside(self, statement: Statement, victims: list[Unit]) -> list[Unit]:
        """Victims that fit elsewhere in the pool once the preemptor is placed: placed again in
        the same decision (moved, not reclaimed or preempted), within the cycle's budget of
        moved pods."""
        moved: list[Unit] = []
        for unit in victims:
            if len(unit.holds) > self.moves_left:
                continue
            if self.place_again(statement, unit):
                moved.append(unit)
                self.moves_left -= len(unit.holds)
        return moved

    def place_again(self, statement: Statement, unit: Unit,
                    avoid: frozenset[int] | set[int] = frozenset()) -> bool:
        """The unit's pods placed again in the statement's pool (a moved workload), none of
        them on the nodes in `avoid` (`NodeState.idx`), or none placed."""
        mover = unit.workload
        session = self.session
        again = session.requests.setdefault(mover.id, request_of(mover))
        pool = statement.pool
        assert pool is not None
        queue = session.queues.project(mover.project, pool.name)
        pods = [hold.pod for hold in unit.holds]
        if quota_refusal(mover, queue, gang_need(again, mover, pods, pool.max_dev_memory), 1):
            return False  # its room was its quota (a limit): it cannot stay, it goes
        checkpoint = statement.checkpoint()
        if again.topology is not None:
            # a topology placement moves inside one domain, with the pods that stay
            moving = {id(h) for h in unit.holds}
            staying = {h.idx for h in self.holds.get(mover.id, ()) if id(h) not in moving}
            pool_topology = session.topology(pool.name)
            if not topology.any_node_will_do(pool_topology, again.topology, len(pods),
                                             bool(staying)):
                def place_pod(pod: str) -> bool:
                    take = statement.place(pod, pod_request(again, mover, pod))
                    return take is not None and take.node.idx not in avoid

                if not topology.place(statement, pool_topology, again.topology, staying, pods,
                                      place_pod):
                    statement.rollback(checkpoint)
                    return False
                statement.pipeline(mover, moved=True)
                return True
        for hold in unit.holds:
            take = statement.place(hold.pod, pod_request(again, mover, hold.pod))
            if take is None or take.node.idx in avoid:
                statement.rollback(checkpoint)
                return False
        statement.pipeline(mover, moved=True)
        return True

    def record_move(self, unit: Unit, pool: str, by: Workload, action: str) -> None:
        """The unit's pods leave their node and start again on the one chosen for them."""
        w = unit.workload
        pods = ", ".join(sorted((h.pod for h in unit.holds), key=natural))
        self.record_eviction(unit, "consolidate", by,
                             f"moved within pool {pool} to make room for {label(by)} "
                             f"({action}): pods {pods} restart at once on other GPUs")
        if w.id in self.holds:  # placed again: no victim any more in this cycle
            self.touch(w.id)
            self.stays[w.id] = self.holds.pop(w.id)

    def _evict_until_placed(self, statement: Statement, workload: Workload, request: Request,
                            gang: int, candidates: Iterator[Unit],
                            admissible: Callable[[Unit], bool], movers: list[Unit]
                            ) -> list[Unit] | None:
        """The units evicted until the gang was placed; None when it never was. A unit that
        may not be a victim but fits on another node of the pool is moved there at once (into
        `movers`, within the cycle's budget of moved pods) instead."""
        released: list[Unit] = []
        # Allocate found no room; only pods already being evicted may have made some since.
        if self.freed and self.try_place(statement, workload, request, gang):
            return released
        tries = 0
        while True:
            unit = next(candidates, None)
            if unit is None or tries >= self.settings.max_tentative_victims:
                return None
            unit = self.current(unit, released + movers)
            if unit is None:
                continue
            if admissible(unit):
                for hold in unit.holds:
                    statement.evict(hold)
                released.append(unit)
            elif self._move_now(statement, unit):
                movers.append(unit)
            else:
                continue
            tries += 1
            if self.try_place(statement, workload, request, gang):
                return released

    def _move_now(self, statement: Statement, unit: Unit) -> bool:
        """Move the unit's pods to other nodes of the pool now, or leave them."""
        if len(unit.holds) > self.moves_left:
            return False
        checkpoint = statement.checkpoint()
        old = {h.idx for h in unit.holds}
        for hold in unit.holds:
            statement.evict(hold)
        if self.place_again(statement, unit, avoid=old):
            self.moves_left -= len(unit.holds)
            return True
        statement.rollback(checkpoint)
        return False

    def try_place(self, statement: Statement, workload: Workload, request: Request,
                   gang: int) -> bool:
        """The gang's first `gang` waiting pods placed together (on the statement), or none."""
        pool = statement.pool
        assert pool is not None
        queue = self.session.queues.project(workload.project, pool.name)
        pods = self.waiting[workload.id][:gang]
        # the master, sized apart, is placed at its own size: only the others need a slot of
        # the workers' size
        workers = gang - 1 if sized_apart(request, workload, pods) else gang
        if quota_refusal(workload, queue, gang_need(request, workload, pods,
                                                    pool.max_dev_memory), 1) is not None:
            return False
        if not request.fraction and request.devices and workers and pool.whole_fit_count(
                request.devices) < workers:
            return False
        checkpoint = statement.checkpoint()
        session = self.session
        pool_topology = session.topology(pool.name) if request.topology is not None else None
        if request.topology is not None and not topology.any_node_will_do(
                pool_topology, request.topology, gang, session.held.get(workload.id, 0) > 0):
            # inside one domain: victims elsewhere made no room for it, and are pruned
            held = session.nodes_of(workload.id) if session.held.get(workload.id, 0) else set()
            return topology.place(statement, pool_topology, request.topology, held, pods,
                                  lambda pod: statement.place(
                                      pod, pod_request(request, workload, pod)) is not None,
                                  topology.room_for(request, gang,
                                                    sized_apart(request, workload, pods)))
        for pod in pods:
            if statement.place(pod, pod_request(request, workload, pod)) is None:
                statement.rollback(checkpoint)
                return False
        return True

    def take_back(self, statement: Statement, unit: Unit) -> bool:
        """Undo a victim's eviction if its room is still free and no limit objects."""
        queue = self.session.queues.project(unit.workload.project, unit.holds[0].pool)
        return statement.take_back(unit.holds, lambda: not any(
            q.limit[r] != -1 and q.allocated[r] > q.limit[r]
            for q in queue.chain() for r in range(3)))

    # topology ---------------------------------------------------------------------------
    def required_domains(self, workload: Workload, pool: str, gives: Callable[[str], bool]
                         ) -> list[Domain] | None:
        """Where a workload with a required topology placement may have its room made: the
        domains of its required level (holding the pods it runs already), those whose free
        room and what the projects `gives` accepts hold there could make it, the fewest GPUs
        to free first. None: no requirement (anywhere in the pool)."""
        session = self.session
        request = session.requests[workload.id]
        if request.topology is None or request.topology[0] is None:
            return None
        pool_topology = session.topology(pool)
        pool_nodes = session.pools[pool]
        gang = max(1, workload.min_pods - session.held.get(workload.id, 0))
        if topology.any_node_will_do(pool_topology, request.topology, gang,
                                     session.held.get(workload.id, 0) > 0):
            return None  # one pod: its room made on one node, as for any pod
        if pool_topology is None:
            return []
        level = pool_topology.level_of(request.topology[0])
        if level is None:
            return []
        need = gang_need(request, workload, self.waiting[workload.id][:gang],
                         pool_nodes.max_dev_memory)[GPU]
        held = session.nodes_of(workload.id) if session.held.get(workload.id, 0) else set()
        ranked: list[tuple[int, int, Domain]] = []
        for position, domain in enumerate(pool_topology.domains(level)):
            if not held <= domain.idxs:
                continue
            free = domain.free_milli()
            givable = sum(m for n in domain.gpu_nodes
                          for p, m in self.held_on(n.idx).items() if gives(p))
            if free + givable >= need:
                ranked.append((need - free, position, domain))
        ranked.sort(key=lambda e: (e[0], e[1]))
        return [domain for _, _, domain in ranked]

    def in_domain(self, unit: Unit, domain: Domain) -> bool:
        """Whether the unit holds a pod inside the domain (what evicting it could free)."""
        holds = unit.holds if unit.surplus else self.holds.get(unit.workload.id, ())
        return any(h.idx in domain.idxs for h in holds)

    # victims ----------------------------------------------------------------------------
    def _runtime(self, pool: str) -> float:
        """The pool's minimum guaranteed runtime in seconds (0: none)."""
        config = self.pool_config.get(pool)
        return config.min_guaranteed_runtime if config else 0

    def protected(self, workload: Workload, pool: str) -> bool:
        """Still inside the pool's minimum guaranteed runtime."""
        runtime = self._runtime(pool)
        if not runtime or workload.started_at is None or self.session.now is None:
            return False
        return (self.session.now - workload.started_at).total_seconds() < runtime

    def _units(self, project: str, pool: str) -> list[Unit]:
        """The queue's victim units for this cycle: elastic pods above the minimum first
        (lowest priority, newest first; the highest pod first), then whole gangs in the same
        order. Non-preemptible and protected workloads are not in it."""
        key = (project, pool)
        units = self.queue_units.get(key)
        if units is not None:
            return units
        holds_of = self.holds
        if self._runtime(pool):
            workloads = [holds_of[wid][0].workload for wid in self.by_queue.get(key, ())
                         if wid in holds_of]
            workloads = [w for w in workloads if w.preemptible and not self.protected(w, pool)]
            workloads.sort(key=victim_order)
        else:  # the index's preemptible workloads in victim order, less those gone since
            workloads = [holds_of[order[2]][0].workload for order in
                         self.index.victims.get(key, ()) if order[2] in holds_of]
        # (built for a queue of hundreds of workloads each time one of them is first evicted:
        # the few elastic ones apart, and each workload's units found without a lookup
        # where it has only its gang)
        surplus: list[Unit] = []
        for w in workloads:
            holds = holds_of[w.id]
            if len(holds) > w.min_pods:
                surplus += [Unit(w, [h], True) for h in reversed(holds[w.min_pods:])]
        gangs = [Unit(w, [], False) for w in workloads]
        units = self.queue_units[key] = surplus + gangs
        units_of = self.units_of
        for position, unit in enumerate(surplus):
            units_of.setdefault(unit.workload.id, []).append((position, unit))
        for position, unit in enumerate(gangs, len(surplus)):
            found = units_of.get(unit.workload.id)
            if found is None:
                units_of[unit.workload.id] = [(position, unit)]
            else:
                found.append((position, unit))
        self.cursor[key] = 0
        self.lowest_priority[key] = workloads[0].priority if workloads else None
        return units

    def live_units(self, project: str, pool: str) -> Iterator[Unit]:
        """The queue's units still standing, from its cursor (past the evicted ones)."""
        key = (project, pool)
        units = self._units(project, pool)
        i = self.cursor[key]
        while i < len(units) and self.current(units[i], []) is None:
            i += 1
        self.cursor[key] = i
        for unit in units[i:]:
            if self.current(unit, []) is not None:
                yield unit

    def live_units_below(self, project: str, pool: str, priority: int) -> list[Unit]:
        """The queue's units still standing whose workloads have a priority below `priority`,
        in victim order. Every pending workload asks each cycle: a queue with nothing that
        low answers at once instead of walking its thousands of running units, and without
        ranking them into victim units when nothing else asked for them yet (in a cluster of
        one priority, none is ever a victim of preemption)."""
        key = (project, pool)
        if key in self.lowest_priority:
            lowest = self.lowest_priority[key]
        elif key in self._lowest_seen:
            # found before any victim unit was built; running work only leaves during a
            # cycle, so it is at most what it is now: a lower one only costs the list below
            lowest = self._lowest_seen[key]
        elif key not in self._touched_keys and not self._runtime(pool):
            # what `_units` would find, without building them: the kept index's lowest
            # priority among the queue's preemptible workloads, while none of them changed
            # this cycle and none is protected
            priorities = self.index.priorities.get(key)
            lowest = self._lowest_seen[key] = min(priorities) if priorities else None
        else:  # the same, from the holds
            holds = self.holds
            lowest = self._lowest_seen[key] = min(
                (holds[wid][0].workload.priority for wid in self.by_queue.get(key, ())
                 if wid in holds and holds[wid][0].workload.preemptible
                 and not self.protected(holds[wid][0].workload, pool)), default=None)
        if lowest is None or lowest >= priority:
            return []
        return [u for u in self.live_units(project, pool) if u.workload.priority < priority]

    def current(self, unit: Unit, released: list[Unit]) -> Unit | None:
        """What the unit takes now: an elastic pod while the workload still runs above its
        minimum; a gang: every pod the workload still holds. None: nothing left to take."""
        holds = self.holds.get(unit.workload.id)
        if not holds:
            return None
        if not released:  # the common question, asked of every unit on every node tried
            if unit.surplus:
                hold = unit.holds[0]
                if len(holds) <= unit.workload.min_pods or not any(h is hold for h in holds):
                    return None
                return unit
            return Unit(unit.workload, list(holds), False)
        taken = {id(h) for u in released if u.workload is unit.workload for h in u.holds}
        left = [h for h in holds if id(h) not in taken]
        if unit.surplus:
            hold = unit.holds[0]
            if (id(hold) in taken or not any(h is hold for h in left)
                    or len(left) <= unit.workload.min_pods):
                return None
            return unit
        return Unit(unit.workload, left, False) if left else None

    def node_order(self, pool: PoolNodes, request: Request, gang: int,
                   among: Set[int] | None = None) -> list[tuple[int, NodeState]] | None:
        """For a single pod: the pool's nodes that could hold it once room is made there, each
        with the milli-GPUs to free on it, the closest to having it first (fewest to free,
        then natural order). None for a gang of several pods (their victims are taken across
        nodes). `among`: only those of these nodes of the pool (`NodeState.idx`), in the same
        order.

        Kept per pool and request shape for the cycle: a pod placed by reclaim changes a few
        nodes of thousands, and the next one asks again; only the nodes kept evictions and
        placements changed since are weighed again (attempts rolled back leave the room as it
        was)."""
        if gang != 1 or not request.devices:
            return None
        shape = (pool.name, request.devices, request.node_type, request.fraction,
                 request.portion, request.memory)
        kept = self._node_orders.get(shape)
        if kept is None:
            kept = self._node_orders[shape] = _NodeOrder(pool, request)
            kept.evictions_seen = len(self._evicted_on)
            kept.placements_seen = len(self.session.placements)
        else:
            self._bring_up_to_date(kept)
        entries = kept.entries
        if among is None or len(among) == len(pool.gpu_nodes):  # (among: the pool's nodes)
            return list(entries)
        return [e for e in entries if e[1].idx in among]

    def _bring_up_to_date(self, kept: "_NodeOrder") -> None:
        """The kept order with the nodes changed since it was last asked weighed again."""
        placements = self.session.placements
        if (kept.evictions_seen == len(self._evicted_on)
                and kept.placements_seen == len(placements)):
            return
        changed = set(self._evicted_on[kept.evictions_seen:])
        node_of = self.session.nodes
        for placement in placements[kept.placements_seen:]:
            changed.update(node_of[pod.node].idx for pod in placement.pods)
        kept.evictions_seen, kept.placements_seen = len(self._evicted_on), len(placements)
        for idx in changed:
            kept.weigh_again(idx)

    def _first_ask(self) -> dict[str, list[Hold] | None]:
        """The holds of the workloads changed so far, as they were when `on_node` was first
        asked: what it answers for the rest of the cycle."""
        if self._at_first_ask is None:
            self._at_first_ask = {wid: self.holds.get(wid) for wid in self._touched}
        return self._at_first_ask

    def on_node(self, idx: int) -> list[str]:
        """The workloads that ran on the node when it was first asked (some may be gone), in
        the ledger's order of their first pod."""
        found = self._on_node.get(idx)
        if found is None:
            changed = self._first_ask()
            found = [wid for wid in self.index.node_wids.get(idx, ())
                     if wid not in changed or any(h.idx == idx for h in changed[wid] or ())]
            if len(found) > 1:
                found.sort(key=self.index.first.__getitem__)
            self._on_node[idx] = found
        return found

    def gpu_nodes_of(self, projects: Iterable[str], pool: str) -> Set[int]:
        """The nodes of the pool where the projects' preemptible workloads held GPUs when
        `on_node` was first asked: every node whose `held_on` names one of them (those only
        lose pods as the cycle goes), so a search for their victims need not look at the
        others."""
        self._first_ask()
        found = [self._gpu_nodes(p, pool) for p in projects]
        found = [nodes for nodes in found if nodes is not None]
        if len(found) == 1:
            return found[0]  # read, never changed
        return set().union(*found)

    def _gpu_nodes(self, project: str, pool: str) -> set[int] | None:
        key = (project, pool)
        nodes = self._gpu_nodes_of.get(key)
        if nodes is None:
            counts = dict(self.index.gpu_nodes.get(key, {}))
            for wid, now in self._first_ask().items():  # theirs then, not as the cycle began
                for holds, sign in ((self.index.holds.get(wid), -1), (now, +1)):
                    if (not holds or not holds[0].workload.preemptible
                            or (holds[0].workload.project, holds[0].pool) != key):
                        continue
                    for i in {h.idx for h in holds if h.gpu}:
                        counts[i] = counts.get(i, 0) + sign
            nodes = self._gpu_nodes_of[key] = {i for i, n in counts.items() if n > 0}
        return nodes or None

    def held_on(self, idx: int) -> dict[str, int]:
        """Per project, the milli-GPUs its preemptible workloads held on the node when it was
        first asked: at most what evicting them could free there."""
        held = self._held_on.get(idx)
        if held is None:
            self._first_ask()
            held = self._held_on[idx] = dict(self.index.node_held.get(idx, {}))
            touched = self._touched_on.get(idx)
            if touched:
                on = set(self.on_node(idx))
                for wid in touched:  # theirs now, not as the cycle began
                    for holds, sign in ((self.index.holds.get(wid), -1),
                                        (self.holds.get(wid) if wid in on else None, +1)):
                        if holds and holds[0].workload.preemptible:
                            project = holds[0].workload.project
                            held[project] = held.get(project, 0) + sign * sum(
                                h.gpu for h in holds if h.idx == idx)
        return held

    def movable(self, pool: str) -> dict[int, list[Hold]] | None:
        """Consolidation's movable pods of the pool by node (`consolidate._movable`), from the
        kept index: those of the workloads this cycle changed left out (each of them was
        placed more, evicted or moved, so none may move). None where the pool protects
        workloads for a while (which ones changes with the clock)."""
        if self._runtime(pool):
            return None
        kept = self.index.movable(pool)
        movable = None
        for idx, wids in self._touched_on.items():
            pods = kept.get(idx)
            if not pods:
                continue
            if movable is None:
                movable = dict(kept)
            gone = set(wids)
            left = [h for h in pods if h.workload.id not in gone]
            if left:
                movable[idx] = left
            else:
                del movable[idx]
        return kept if movable is None else movable

    def units_on(self, node: NodeState, pool: str, settled: int) -> list[Unit]:
        """The victim units still standing with pods on the node: those of the most
        over-served queues first, then in each queue's victim order. Kept while the pool's
        settled version (`settled`, the caller's: it asks of many nodes in a row) stands: only
        what is kept (evictions, placements) changes them, and reclaim asks of the same nodes
        for one class of waiting workloads after another."""
        kept = self._units_on.get(node.idx)
        if kept is not None and kept[0] == settled:
            return kept[1]
        units = self._rank_units_on(node, pool)
        self._units_on[node.idx] = (settled, units)
        return units

    def _rank_units_on(self, node: NodeState, pool: str) -> list[Unit]:
        """The node's victim units ranked by their queues' places and their own in their
        queue (`_units`): a workload's gang, and its pods above the minimum that run on the
        node (one elsewhere frees nothing here: evicted, its room could only be taken by work
        moved aside, two restarts for one pod's room). A queue not built yet is not built
        for it: its units on the node are made as `_units` would make them now, and placed
        where it would place them (from the kept index's victim order: `_places`); it is
        built before one of its workloads changes (`touch`), or when something else asks."""
        ranked: list[tuple[tuple[float, float], int, Unit]] = []
        places: dict[str, Callable[[Workload], tuple[int, int]]] = {}
        runtime = self._runtime(pool)
        for wid in self.on_node(node.idx):
            holds = self.holds.get(wid)
            if not holds:
                continue
            w = holds[0].workload
            key = (w.project, pool)
            over = _over(self.session.queues.project(w.project, pool))
            if (key in self.queue_units or runtime or holds[0].pool != pool
                    or wid not in self.by_queue.get(key, ())):
                self._units(*key)
                self._built_units(wid)  # its own queue's (another pool's, rarely)
                ranked += [(over, position, unit) for position, unit in self.units_of.get(wid, ())
                           if (not unit.surplus or unit.holds[0].idx == node.idx)
                           and self.current(unit, []) is not None]
                continue
            self._units_due.add(key)
            if not w.preemptible:
                continue
            place = places.get(w.project)
            if place is None:
                place = places[w.project] = self._places(key)
            surplus, gang = place(w)
            extra = max(0, len(holds) - w.min_pods)
            for i, h in enumerate(reversed(holds[len(holds) - extra:])):
                if h.idx == node.idx:
                    ranked.append((over, surplus + i, Unit(w, [h], True)))
            ranked.append((over, gang, Unit(w, [], False)))
        ranked.sort(key=lambda e: (e[0], e[1]))
        return [unit for _, _, unit in ranked]

    def _places(self, key: tuple[str, str]) -> Callable[[Workload], tuple[int, int]]:
        """Where `_units(*key)`, built now, would place a workload's units (the first of its
        pods above the minimum, its gang), none of them protected: from the index's victim
        order as the cycle began, with the queue's workloads changed since as they are now."""
        index = self.index
        victims = index.victims.get(key, [])
        elastic = index.elastic.get(key, [])
        gone: list[tuple] = []  # no victim now
        more: list[tuple[tuple, int]] = []  # how many more pods above the minimum now
        if key in self._touched_keys:
            for wid in self._touched:
                then = index.holds.get(wid)
                if not then or (then[0].workload.project, then[0].pool) != key:
                    continue
                w = then[0].workload
                if not w.preemptible:
                    continue
                order = victim_order(w)
                now = self.holds.get(wid)
                if now is None:
                    gone.append(order)
                extra = max(0, len(now) - w.min_pods) if now else 0
                if extra != max(0, len(then) - w.min_pods):
                    more.append((order, extra - max(0, len(then) - w.min_pods)))
        surplus = sum(n for _, n in elastic) + sum(n for _, n in more)

        def place(w: Workload) -> tuple[int, int]:
            order = victim_order(w)
            before = (sum(n for o, n in elastic if o < order)
                      + sum(n for o, n in more if o < order))
            rank = bisect_left(victims, order) - sum(1 for o in gone if o < order)
            return before, surplus + rank

        return place

    def queues_in(self, pool: str) -> list[Queue]:
        """The project queues with workloads running in the pool when the cycle began (one
        whose last workload left since gives no victim: harmless)."""
        queues = self._queues_in.get(pool)
        if queues is None:
            names = sorted({project for (project, p), wids in self.by_queue.items()
                            if p == pool and any(w in self.holds for w in wids)})
            queues = self._queues_in[pool] = [self.session.queues.project(name, pool)
                                              for name in names]
        return queues

    def queues_over(self, pool: str, deserved: bool) -> list[Queue]:
        """`queues_in(pool)` but those that, nor their department, hold more than their
        allocatable share or (`deserved`) their deserved quota: reclaim takes nothing from
        them. Kept while no statement is kept (`Session.commits`): nothing else changes what
        they hold."""
        kept = self._over_in.get((pool, deserved))
        commits = self.session.commits
        if kept is None or kept[0] != commits:
            kept = self._over_in[(pool, deserved)] = (commits, [
                q for q in self.queues_in(pool)
                if _above(q, deserved) or (q.parent is not None and _above(q.parent, deserved))])
        return kept[1]

    def by_queue_order(self, queues: list[Queue], pool: str) -> Iterator[Unit]:
        """Units of the most over-served queue first (department, then project), re-ranked as
        they give."""
        iterators = {q.name: self.live_units(q.name, pool) for q in queues}
        heap = [(_over(q), q.name, q) for q in queues]
        heapq.heapify(heap)
        while heap:
            _, name, queue = heapq.heappop(heap)
            unit = next(iterators[name], None)
            if unit is None:
                continue
            yield unit
            heapq.heappush(heap, (_over(queue), name, queue))

    # decisions --------------------------------------------------------------------------
    def record_eviction(self, unit: Unit, reason: str, by: Workload | None, message: str
                        ) -> None:
        """The unit's pods are this cycle's victims: one decision per victim and preemptor."""
        wid = unit.workload.id
        self.movers.clear()
        self.touch(wid)
        self._evicted_on += [h.idx for h in unit.holds]
        earlier = wid in self.evicted
        taken = [h.pod for h in unit.holds]
        self.evicted.setdefault(wid, []).extend(taken)
        # a workload moved earlier in the cycle is no victim any more, but what it still
        # holds tells a later move of its other pods from a move of all of them
        where = self.holds if wid in self.holds else self.stays
        gone = set(taken)
        remaining = [h for h in where.get(wid, []) if h.pod not in gone]
        if remaining:
            where[wid] = remaining
        else:
            where.pop(wid, None)
        by_id = by.id if by else None
        evictions = self.session.evictions
        # A second eviction of the same victim for the same preemptor (elastic pods, then its
        # gang) widens the first.
        for i, e in enumerate(evictions):
            if e.workload_id == wid and e.reason == reason and e.by == by_id:
                others = any(x.workload_id == wid for j, x in enumerate(evictions) if j != i)
                pods = tuple(sorted((*(e.pods or ()), *taken), key=natural))
                evictions[i] = Eviction(wid, reason, by_id, e.message,
                                        None if not remaining and not others else pods)
                return
        # None: every pod of the workload (nothing was taken from it before in this cycle).
        pods = None if not remaining and not earlier else tuple(sorted(taken, key=natural))
        evictions.append(Eviction(wid, reason, by_id, message, pods))

    def waiting_for_preemption(self, workload: Workload, pool: str, units: list[Unit]
                               ) -> None:
        """The preemptor's pending reason until the victims are gone."""
        victims = sorted({label(u.workload) for u in units})
        session = self.session
        what = (f"{reasons.count(len(victims), 'workload')} ({', '.join(victims[:3])}"
                f"{', ...' if len(victims) > 3 else ''}) "
                f"{'is' if len(victims) == 1 else 'are'} being preempted"
                if victims else "preempted workloads are leaving")
        session.pending.retell(PendingReason(  # (replacing allocation's, and last)
            workload.id, PendingCode.WAITING_FOR_PREEMPTION,
            f"room is being made in pool {pool}: {what}; it starts once they are gone"))


def evicted_pods(unit: Unit) -> str:
    """How a sentence names what a unit gives: pods above its minimum, or all of them."""
    return (f"{reasons.count(len(unit.holds), 'pod')} above its minimum"
            if unit.surplus else "its pods")


def label(workload: Workload) -> str:
    """How a sentence names a workload: its name, else its id."""
    return workload.name or workload.id


def top(queue: Queue) -> Queue:
    """The queue's department, or the queue itself when it has none."""
    return queue.parent if queue.parent is not None else queue


def saturation(queue: Queue) -> float:
    """Allocated GPUs over the fair share (infinite when it holds some with no share)."""
    allocated, fair = queue.allocated[GPU], queue.fair[GPU]
    if not allocated:
        return 0.0
    return allocated / fair if fair else math.inf


def _above(queue: Queue, deserved: bool) -> bool:
    """It holds more GPUs than its allocatable share, or (`deserved`) its deserved quota."""
    line = queue.allocatable(GPU)
    return queue.allocated[GPU] > (min(line, queue.deserved[GPU]) if deserved else line)


def _over(queue: Queue) -> tuple[float, float]:
    """Heap key: the most over-served first, department before project."""
    return (-saturation(top(queue)), -saturation(queue))


class _NodeOrder:
    """One request shape's `Solver.node_order` in one pool: (milli-GPUs to free, node) for
    every node that could hold the pod once room is made there, fewest to free first, then
    natural order (`NodeState.idx`)."""

    def __init__(self, pool: PoolNodes, request: Request):
        self.pool = pool
        self.devices, self.node_type = request.devices, request.node_type
        self.fraction, self.portion, self.memory = (request.fraction, request.portion,
                                                    request.memory)
        self.deficit: dict[int, int] = {}  # the nodes in the order, with theirs
        ranked = []
        for node in pool.gpu_nodes:
            deficit = self.deficit_of(node)
            if deficit > 0:
                self.deficit[node.idx] = deficit
                ranked.append((deficit, node.idx, node))
        ranked.sort()  # (deficit, idx) decide: idx is unique
        self.entries: list[tuple[int, NodeState]] = [(d, node) for d, _, node in ranked]
        self.evictions_seen = 0  # how much of `Solver._evicted_on` it has weighed
        self.placements_seen = 0  # and of the session's placements

    def deficit_of(self, node: NodeState) -> int:
        """The milli-GPUs to free on the node before it holds the pod; 0 where it has the
        room already or never could."""
        devices = self.devices
        if node.gpus < devices or (self.node_type is not None
                                   and node.node_type != self.node_type):
            return 0
        if not self.fraction:
            return (devices - node.whole) * FULL if node.whole < devices else 0
        milli = milli_of(node, self.portion, self.memory)
        if milli is None:
            return 0
        if devices == 1:  # the least used device
            return max(0, min(node.used) + milli - FULL)
        return sum(max(0, u + milli - FULL) for u in sorted(node.used)[:devices])

    def weigh_again(self, idx: int) -> None:
        """The node's place in the order, as its room is now."""
        node = self.pool.by_idx.get(idx)
        if node is None or node.gpus == 0:
            return
        entries = self.entries
        before = self.deficit.pop(idx, None)
        if before is not None:
            del entries[bisect_left(entries, (before, idx), key=_rank)]
        deficit = self.deficit_of(node)
        if deficit > 0:
            self.deficit[idx] = deficit
            insort(entries, (deficit, node), key=_rank)


def _rank(entry: tuple[int, NodeState]) -> tuple[int, int]:
    return entry[0], entry[1].idx
