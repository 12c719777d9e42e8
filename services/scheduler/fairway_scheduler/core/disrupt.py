"""The disruptive actions: consolidate, reclaim, preempt, stale-gang eviction.

They run after `allocate`, on the same session, in that order. Each attempt for a pending
workload is a simulation: victims' pods are released one unit at a time (an elastic workload's
pods above its minimum first, one by one; then whole gangs), and after each release the
preemptor's gang is tried; once it fits, victims whose room it did not need are put back
(pruned), the rules of the action are checked on the result, and only then is anything kept.
Otherwise everything is put back and nothing happens. So a disruption never evicts for a
workload it cannot place, never a non-preemptible workload, and never more than it needs.

Placements made here are `pipelined`: they use room the victims still hold until their pods are
gone. A shell that evicts instantly (the simulator by default) binds them at once; the service
evicts, lets the preemptor wait (`WaitingForPreemption`), and binds it when `allocate` finds the
room free. Pods a preemption decision is already evicting (`Workload.evicting_pods`) are free
room at the start of this phase, so a later cycle does not evict again for the same preemptor.

Fairness rules use GPUs, the resource queues contend for: CPU and memory quotas only limit.
- reclaim (between queues): the preemptor's project (and, across departments, its department)
  is below its fair share; victims come from queues above theirs, the most over-served first
  (departments, then projects), lowest priority and newest first inside one; no victim queue
  ends below its fair share; the reclaiming queue ends no more saturated (allocated / fair
  share) than any queue it took from.
- preempt (inside a queue): victims are preemptible workloads of the same project and pool with
  strictly lower priority, lowest and newest first; quotas still apply (a non-preemptible
  preemptor stays within deserved; a limit counts what the victims give back).
- consolidate: a whole-GPU gang that the pool's free devices could hold but for fragmentation;
  preemptible workloads on the nodes it needs are moved, each placed again in the same decision
  or nothing moves; at most `max_pods_moved` pods per cycle; not in pools that spread.
- stale gangs: a running workload below its minimum pods for longer than the grace period is
  evicted whole, so a partial gang does not hold GPUs.
A pool's minimum guaranteed runtime protects a workload from reclaim, preempt and consolidate
until it has run that long.
"""

import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fairway_scheduler.core import reasons
from fairway_scheduler.core.allocate import Allocate, quota_refusal
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.model import (
    ClusterSnapshot,
    CycleResult,
    Eviction,
    PendingCode,
    PendingReason,
    Workload,
)
from fairway_scheduler.core.nodes import FULL, NodeState, PoolNodes, Take, natural
from fairway_scheduler.core.queues import GPU, MILLI, Queue
from fairway_scheduler.core.session import Request, Session, request_of, too_large


@dataclass(slots=True)
class Hold:
    """One running pod and what it holds."""

    workload: Workload
    pod: str
    node: NodeState
    devices: tuple[int, ...]
    milli: int
    cpu: int
    mem: int

    @property
    def gpu(self) -> int:
        return self.milli * len(self.devices)


@dataclass(slots=True)
class Unit:
    """What one release step takes away: an elastic pod, or a workload's (remaining) gang."""

    workload: Workload
    holds: list[Hold]
    surplus: bool

    @property
    def gpu(self) -> int:
        return sum(h.gpu for h in self.holds)


class Disruption:
    def __init__(self, session: Session):
        self.session = session
        self.settings = session.snapshot.disruption
        self.pool_config = {p.name: p for p in session.snapshot.pools}
        placed = {p.workload_id for p in session.placements}
        # Running pods on ready nodes, per workload; pods being evicted are released at once.
        self.holds: dict[str, list[Hold]] = {}
        evicting = {(w.id, pod) for w in session.snapshot.workloads for pod in w.evicting_pods}
        self.freed: list[Hold] = []
        for (wid, pod), entry in session.ledger._entries.items():
            workload = session.workloads.get(wid)
            name, devices, milli, cpu, mem = entry[:5]
            node = session.nodes.get(name) if name else None
            if workload is None or node is None or node.pool not in session.pools:
                continue
            if not node.ready:
                continue
            hold = Hold(workload, pod, node, tuple(devices), milli, cpu, mem)
            if (wid, pod) in evicting:
                self.freed.append(hold)
            elif wid not in placed:
                self.holds.setdefault(wid, []).append(hold)
        # Per (project, pool): the workloads running there; their victim units, built once
        # per cycle in victim order and walked with a cursor (evicted ones are skipped).
        self.by_queue: dict[tuple[str, str], list[str]] = {}
        for wid, hold_list in self.holds.items():
            hold_list.sort(key=lambda h: natural(h.pod))
            w = hold_list[0].workload
            self.by_queue.setdefault((w.project, hold_list[0].node.pool), []).append(wid)
        self.queue_units: dict[tuple[str, str], list[Unit]] = {}
        self.cursor: dict[tuple[str, str], int] = {}
        self.movers: dict[str, dict[int, list[Unit]]] = {}  # per pool, until a move
        for hold in self.freed:
            self._release(hold)
        self.evicted: dict[str, list[str]] = {}  # this cycle's victims -> pods evicted
        self.waiting: dict[str, list[str]] = {}
        self.failed: set[tuple] = set()  # attempt shapes that found no room this cycle
        self.moves_left = self.settings.max_pods_moved

    # the cycle --------------------------------------------------------------------------
    def run(self) -> None:
        actions: list[tuple[str, Callable[[Workload, str], bool]]] = []
        if self.settings.consolidate:
            actions.append(("consolidate", self._consolidate))
        if self.settings.reclaim:
            actions.append(("reclaim", self._reclaim))
        if self.settings.preempt:
            actions.append(("preempt", self._preempt))
        for _, action in actions:
            for workload in self._preemptors():
                for pool in self.session.target_pools(workload):
                    if action(workload, pool):
                        break
        self._stale_gangs()

    def _preemptors(self) -> list[Workload]:
        """Workloads whose gang still waits, fairest queue first (the queue furthest below its
        fair share), then priority, then submission time."""
        session = self.session
        out = []
        for workload in session.snapshot.workloads:
            if (not workload.waiting_pods or workload.id in session.unschedulable
                    or workload.id in self.evicted
                    or session.held[workload.id] >= workload.min_pods):
                continue
            if workload.id not in self.waiting:
                self.waiting[workload.id] = sorted(workload.waiting_pods, key=natural)
            out.append(workload)

        def key(w: Workload):
            pool = session.target_pools(w)[0]
            queue = session.queues.project(w.project, pool)
            return (_saturation(queue), -w.priority, w.submitted_at, w.id)

        return sorted(out, key=key)

    # the three actions ------------------------------------------------------------------
    def _reclaim(self, workload: Workload, pool: str) -> bool:
        session = self.session
        if pool not in session.pools:
            return False
        reclaimer = session.queues.project(workload.project, pool)
        if reclaimer.allocated[GPU] >= reclaimer.fair[GPU]:
            return False
        top = _top(reclaimer)

        def level(victim: Queue) -> list[Queue]:
            """The victim's queues that the reclaimer does not share: the rules apply there."""
            return [q for q in victim.chain() if q is not reclaimer and q is not top]

        if top is not reclaimer and top.allocated[GPU] >= top.fair[GPU]:
            # Below its share inside its department, but the department is not: only its own
            # department's other projects may give (their queues are compared below).
            def eligible(victim: Queue) -> bool:
                return victim.parent is top and victim is not reclaimer
        else:
            def eligible(victim: Queue) -> bool:
                return victim is not reclaimer

        queues = [q for q in self._queues_in(pool) if eligible(q)
                  and all(x.allocated[GPU] > x.fair[GPU] for x in level(q))]
        if not queues and not self.freed:
            return False

        def admissible(unit: Unit) -> bool:
            queue = session.queues.project(unit.workload.project, pool)
            return all(q.allocated[GPU] - unit.gpu >= q.fair[GPU] for q in level(queue))

        def fair_after(victims: list[Unit]) -> bool:
            # Compared level for level: a department with the reclaimer's department (or
            # department-less project), a project with the reclaimer's project.
            for unit in victims:
                for q in level(session.queues.project(unit.workload.project, pool)):
                    mine = _saturation(top if q.parent is None else reclaimer)
                    if q.allocated[GPU] < q.fair[GPU] or _saturation(q) < mine:
                        return False
            return True

        return self._attempt(workload, pool, "reclaim", self._by_queue(queues, pool),
                             admissible, fair_after)

    def _preempt(self, workload: Workload, pool: str) -> bool:
        if pool not in self.session.pools:
            return False
        units = [u for u in self._live_units(workload.project, pool)
                 if u.workload.priority < workload.priority]
        if not units and not self.freed:
            return False
        return self._attempt(workload, pool, "preempt", iter(units), lambda _: True,
                             lambda _: True, shape=workload.priority)

    def _consolidate(self, workload: Workload, pool_name: str) -> bool:
        session = self.session
        pool = session.pools.get(pool_name)
        if pool is None or not pool.gpu_nodes or pool.gpu_strategy != "binpack":
            return False
        request = session.requests[workload.id]
        d = request.devices
        gang = max(1, workload.min_pods - session.held[workload.id])
        waiting = self.waiting[workload.id]
        if request.fraction or not d or len(waiting) < gang or self.moves_left <= 0:
            return False
        queue = session.queues.project(workload.project, pool_name)
        vector = request.vector(pool.max_dev_memory)
        if quota_refusal(workload, queue, vector, gang) is not None:
            return False
        free = sum(b * pool.counts[b] for b in range(1, pool.max_devices + 1))
        if free < gang * d or pool.whole_fit_count(d) >= gang or too_large(pool, request):
            return False  # not fragmentation: either no room at all, or room already
        shape = ("consolidate", workload.project, pool_name, d, gang)
        if shape in self.failed:
            return False
        movable = self.movers.get(pool_name)
        if movable is None:
            movable = self.movers[pool_name] = self._movers(pool_name)
        moved: list[Unit] = []
        budget = self.moves_left
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
                    self._release(hold)
                moved.append(unit)
                budget -= len(unit.holds)
        statement = session.statement(pool)
        placed = pool.whole_fit_count(d) >= gang and all(
            statement.place(pod, request) is not None for pod in waiting[:gang])
        movers: list[tuple[Unit, object]] = []
        if placed:
            for unit in moved:
                mover = unit.workload
                session.requests.setdefault(mover.id, request_of(mover))
                again = session.statement(pool)
                if all(again.place(h.pod, session.requests[mover.id]) is not None
                       for h in unit.holds):
                    movers.append((unit, again))
                else:
                    again.rollback()
                    placed = False
                    break
        if not placed or not moved:
            for _, again in reversed(movers):
                again.rollback()  # type: ignore[attr-defined]
            statement.rollback()
            for unit in reversed(moved):
                for hold in reversed(unit.holds):
                    self._restore(hold)
            self.failed.add(shape)
            return False
        statement.commit(workload, pipelined=True)
        del waiting[:gang]
        for unit, again in movers:
            # It is evicted from its old place and restarts on the new one: the same pods.
            again.commit(unit.workload, pipelined=True, moved=True)  # type: ignore[attr-defined]
            self._evict(unit, "consolidate", workload,
                        f"moved to other nodes of pool {pool_name} to make room for "
                        f"{_label(workload)} ({reasons.pods_with(gang, request)} together); it "
                        "restarts there at once")
            self.holds.pop(unit.workload.id, None)
        self.moves_left -= sum(len(u.holds) for u in moved)
        self._waiting_for_preemption(workload, pool_name, moved)
        return True

    # the simulation ---------------------------------------------------------------------
    def _attempt(self, workload: Workload, pool_name: str, reason: str,
                 candidates: Iterator[Unit], admissible: Callable[[Unit], bool],
                 valid: Callable[[list[Unit]], bool], shape: object = None) -> bool:
        session = self.session
        pool = session.pools[pool_name]
        if not pool.nodes:
            return False
        request = session.requests[workload.id]
        if too_large(pool, request):
            return False
        gang = max(1, workload.min_pods - session.held[workload.id])
        waiting = self.waiting[workload.id]
        if len(waiting) < gang:
            return False
        key = (reason, workload.project, pool_name, request, gang, workload.preemptible, shape)
        if key in self.failed:
            return False
        queue = session.queues.project(workload.project, pool_name)
        vector = request.vector(pool.max_dev_memory)
        released: list[Unit] = []
        # Allocate found no room; only pods already being evicted may have made some since.
        statement = (self._try_place(workload, pool, request, queue, vector, gang, waiting)
                     if self.freed else None)
        tries = 0
        while statement is None:
            unit = next(candidates, None)
            if unit is None or tries >= self.settings.max_tentative_victims:
                break
            unit = self._current(unit, released)
            if unit is None or not admissible(unit):
                continue
            tries += 1
            for hold in unit.holds:
                self._release(hold)
            released.append(unit)
            statement = self._try_place(workload, pool, request, queue, vector, gang, waiting)
        if statement is None:
            self._undo(released)
            self.failed.add(key)
            return False
        # Prune: put back every victim whose room the preemptor did not take (newest release
        # first, so the one that made it fit is the last to be tried).
        for unit in reversed(released[:-1]):
            if self._put_back(unit):
                released.remove(unit)
        if not valid(released):
            statement.rollback()
            self._undo(released)
            self.failed.add(key)
            return False
        statement.commit(workload, pipelined=True)
        del waiting[:gang]
        for unit in released:
            self._evict(unit, reason, workload, self._message(reason, unit, workload, pool_name))
        self._waiting_for_preemption(workload, pool_name, released)
        return True

    def _try_place(self, workload: Workload, pool: PoolNodes, request: Request, queue: Queue,
                   vector: list[int], gang: int, waiting: list[str]):
        if quota_refusal(workload, queue, vector, gang) is not None:
            return None
        if not request.fraction and request.devices and pool.whole_fit_count(
                request.devices) < gang:
            return None
        statement = self.session.statement(pool)
        for pod in waiting[:gang]:
            if statement.place(pod, request) is None:
                statement.rollback()
                return None
        return statement

    # victims ----------------------------------------------------------------------------
    def _protected(self, workload: Workload, pool: str) -> bool:
        config = self.pool_config.get(pool)
        runtime = config.min_guaranteed_runtime if config else 0
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
        workloads = [self.holds[wid][0].workload for wid in self.by_queue.get(key, ())
                     if wid in self.holds]
        workloads = [w for w in workloads if w.preemptible and not self._protected(w, pool)]
        workloads.sort(key=lambda w: (w.priority, -w.submitted_at.timestamp(), w.id))
        surplus: list[Unit] = []
        gangs: list[Unit] = []
        for w in workloads:
            holds = self.holds[w.id]
            extra = max(0, len(holds) - w.min_pods)
            surplus += [Unit(w, [h], True) for h in reversed(holds[len(holds) - extra:])]
            gangs.append(Unit(w, [], False))
        units = self.queue_units[key] = surplus + gangs
        self.cursor[key] = 0
        return units

    def _live_units(self, project: str, pool: str) -> Iterator[Unit]:
        """The queue's units still standing, from its cursor (past the evicted ones)."""
        key = (project, pool)
        units = self._units(project, pool)
        i = self.cursor[key]
        while i < len(units) and self._current(units[i], []) is None:
            i += 1
        self.cursor[key] = i
        for unit in units[i:]:
            if self._current(unit, []) is not None:
                yield unit

    def _current(self, unit: Unit, released: list[Unit]) -> Unit | None:
        """What the unit takes now: an elastic pod while the workload still runs above its
        minimum; a gang: every pod the workload still holds. None: nothing left to take."""
        holds = self.holds.get(unit.workload.id)
        if not holds:
            return None
        taken = {id(h) for u in released if u.workload is unit.workload for h in u.holds}
        left = [h for h in holds if id(h) not in taken]
        if unit.surplus:
            hold = unit.holds[0]
            if (id(hold) in taken or not any(h is hold for h in left)
                    or len(left) <= unit.workload.min_pods):
                return None
            return unit
        return Unit(unit.workload, left, False) if left else None

    def _queues_in(self, pool: str) -> list[Queue]:
        names = sorted({project for (project, p), wids in self.by_queue.items()
                        if p == pool and any(w in self.holds for w in wids)})
        return [self.session.queues.project(name, pool) for name in names]

    def _by_queue(self, queues: list[Queue], pool: str) -> Iterator[Unit]:
        """Units of the most over-served queue first (department, then project), re-ranked as
        they give."""
        iterators = {q.name: self._live_units(q.name, pool) for q in queues}
        heap = [(_over(q), q.name, q) for q in queues]
        heapq.heapify(heap)
        while heap:
            _, name, queue = heapq.heappop(heap)
            unit = next(iterators[name], None)
            if unit is None:
                continue
            yield unit
            heapq.heappush(heap, (_over(queue), name, queue))

    def _movers(self, pool: str) -> dict[int, list[Unit]]:
        """Whole-GPU preemptible workloads running in the pool, by the nodes they are on."""
        out: dict[int, list[Unit]] = {}
        for wid, holds in self.holds.items():
            w = holds[0].workload
            if (holds[0].node.pool != pool or not w.preemptible or wid in self.evicted
                    or w.gpu_portion is not None or w.gpu_memory_mib is not None
                    or self._protected(w, pool) or len(holds) < w.min_pods):
                continue
            unit = Unit(w, list(holds), False)
            for idx in {h.node.idx for h in holds}:
                out.setdefault(idx, []).append(unit)
        return out

    # stale gangs ------------------------------------------------------------------------
    def _stale_gangs(self) -> None:
        now = self.session.now
        grace = self.settings.stale_gang_grace
        if now is None:
            return
        for wid, holds in sorted(self.holds.items()):
            w = holds[0].workload
            if (wid in self.evicted or w.below_min_since is None
                    or self.session.held[wid] >= w.min_pods):
                continue
            short = (now - w.below_min_since).total_seconds()
            if short < grace:
                continue
            unit = Unit(w, list(holds), False)
            for hold in unit.holds:
                self._release(hold)
            gpus = reasons.resource(GPU, unit.gpu)
            self._evict(unit, "stale-gang", None,
                        f"ran with {len(holds)} of its {w.min_pods} pods for {short:.0f} s "
                        f"(the grace period is {grace:.0f} s): evicted whole so that a partial "
                        f"gang does not hold {gpus}; it waits for all its pods again")

    # bookkeeping ------------------------------------------------------------------------
    def _release(self, hold: Hold) -> None:
        pool = self.session.pools[hold.node.pool]
        pool.give(Take(hold.node, hold.devices, hold.milli, hold.cpu, hold.mem))
        self.session.account(hold.workload, pool.name, [hold.gpu, hold.cpu, hold.mem], -1)
        self.session.held[hold.workload.id] -= 1

    def _restore(self, hold: Hold) -> bool:
        node = hold.node
        if (any(node.used[d] + hold.milli > FULL for d in hold.devices)
                or not node.fits_host(hold.cpu, hold.mem)):
            return False
        pool = self.session.pools[node.pool]
        pool.take(node, hold.devices, hold.milli, hold.cpu, hold.mem)
        self.session.account(hold.workload, pool.name, [hold.gpu, hold.cpu, hold.mem], +1)
        self.session.held[hold.workload.id] += 1
        return True

    def _put_back(self, unit: Unit) -> bool:
        """Restore a released unit if its room is still free and no limit objects."""
        done: list[Hold] = []
        for hold in unit.holds:
            if not self._restore(hold):
                for back in reversed(done):
                    self._release(back)
                return False
            done.append(hold)
        queue = self.session.queues.project(unit.workload.project, unit.holds[0].node.pool)
        if any(q.limit[r] != -1 and q.allocated[r] > q.limit[r]
               for q in queue.chain() for r in range(3)):
            for back in reversed(done):
                self._release(back)
            return False
        return True

    def _undo(self, released: list[Unit]) -> None:
        for unit in reversed(released):
            for hold in reversed(unit.holds):
                restored = self._restore(hold)
                assert restored, "a released pod's room was taken during a rolled-back attempt"

    def _evict(self, unit: Unit, reason: str, by: Workload | None, message: str) -> None:
        wid = unit.workload.id
        self.movers.clear()
        earlier = wid in self.evicted
        taken = [h.pod for h in unit.holds]
        self.evicted.setdefault(wid, []).extend(taken)
        remaining = [h for h in self.holds.get(wid, []) if h.pod not in set(taken)]
        if remaining:
            self.holds[wid] = remaining
        else:
            self.holds.pop(wid, None)
        by_id = by.id if by else None
        evictions = self.session.evictions
        # One decision per victim and preemptor: a second release of the same victim for the
        # same preemptor (elastic pods, then its gang) widens the first.
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

    def _message(self, reason: str, unit: Unit, by: Workload, pool: str) -> str:
        what = (f"{reasons.count(len(unit.holds), 'pod')} above its minimum"
                if unit.surplus else "its pods")
        gpus = reasons.resource(GPU, unit.gpu)
        if reason == "reclaim":
            queue = self.session.queues.project(unit.workload.project, pool)
            share = reasons.number(queue.fair[GPU] / MILLI)
            return (f"project {unit.workload.project} uses more than its fair share of "
                    f"{share} GPUs in pool {pool}, and project {by.project} below its share "
                    f"needs them back: {what} ({gpus}) make room for {_label(by)}")
        return (f"{_label(by)} in project {by.project} has a higher priority ({by.priority} over "
                f"{unit.workload.priority}) and needs room in pool {pool}: {what} ({gpus}) make "
                "room for it")

    def _waiting_for_preemption(self, workload: Workload, pool: str, units: list[Unit]
                                ) -> None:
        """The preemptor's pending reason until the victims are gone."""
        victims = sorted({_label(u.workload) for u in units})
        session = self.session
        session.pending[:] = [p for p in session.pending if p.workload_id != workload.id]
        what = (f"{reasons.count(len(victims), 'workload')} ({', '.join(victims[:3])}"
                f"{', ...' if len(victims) > 3 else ''}) are being preempted"
                if victims else "preempted workloads are leaving")
        session.pending.append(PendingReason(
            workload.id, PendingCode.WAITING_FOR_PREEMPTION,
            f"room is being made in pool {pool}: {what}; it starts once they are gone"))


def decide(snapshot: ClusterSnapshot, ledger: Ledger | None = None) -> CycleResult:
    """One whole cycle: allocate, then consolidate, reclaim, preempt and stale-gang eviction."""
    session = Session(snapshot, ledger)
    Allocate(session).run()
    # Most cycles have nothing to disrupt for: skip indexing every running pod then. A gang
    # whose pods do not all exist yet is nothing to disrupt for either (no room made would
    # start it); bursts of new workloads are mostly that, while their pods are being created.
    if any(w.evicting_pods or w.below_min_since is not None
           or (w.waiting_pods and session.held[w.id] < w.min_pods
               and len(w.waiting_pods) + session.held[w.id] >= w.min_pods
               and w.id not in session.unschedulable)
           for w in snapshot.workloads):
        Disruption(session).run()
    return session.result()


def _label(workload: Workload) -> str:
    """How a sentence names a workload: its name, else its id."""
    return workload.name or workload.id


def _top(queue: Queue) -> Queue:
    return queue.parent if queue.parent is not None else queue


def _saturation(queue: Queue) -> float:
    allocated, fair = queue.allocated[GPU], queue.fair[GPU]
    if not allocated:
        return 0.0
    return allocated / fair if fair else math.inf


def _over(queue: Queue) -> tuple[float, float]:
    """Heap key: the most over-served first, department before project."""
    return (-_saturation(_top(queue)), -_saturation(queue))
