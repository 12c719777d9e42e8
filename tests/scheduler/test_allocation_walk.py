"""Allocation's walks in queue order, kept cheap, over random clusters with many waiting
workloads that ask alike (`test_disruption_walk.alike`) and random ones
(`test_scheduler_properties.snapshots`):

- a queue's order key is remembered per need while its allocation stands;
- a project whose next workload keeps it first in its department, and the department first,
  goes on with it without the heaps (and so does a run of workloads that ask the same);
- in the first walks (within fair shares) a workload that asks as one refused there is refused
  for the rest of them, whatever was placed since;
- what a waiting workload asks (`allocate._Asks`, its class) is found once and shared by those
  that ask alike, and found again only when it places.

Each decides exactly as the plain walk, written out below as it was before: every key worked
out again after every attempt, every workload tried at its turn, each walk's workloads chosen
(within fair shares, gangs or pods above the minimum, what the lending walks' probe refuses)
one by one from the session as it stands.
"""

import heapq

from hypothesis import HealthCheck, given, settings

from fairway_scheduler.core import cycle, decide
from fairway_scheduler.core.actions import allocate as allocate_module
from fairway_scheduler.core.actions.allocate import _LENDS, _UNSAID, Allocate, _Asks
from fairway_scheduler.core.nodes import natural
from fairway_scheduler.core.queues import order_key
from tests.scheduler.test_disruption_walk import alike
from tests.scheduler.test_scheduler_properties import second_cycle, snapshots


class _Forgetting(set):
    """Remembers no refusal: every workload is tried."""

    def __contains__(self, item) -> bool:
        return False


class _PlainAllocate(Allocate):
    """Allocation with the plain walk, each walk's workloads chosen one by one."""

    def __init__(self, session):
        super().__init__(session)
        self._refused_alike = _Forgetting()

    def run(self):
        session = self.session
        by_project = {}
        for workload in session.snapshot.workloads:
            if workload.waiting_pods:
                by_project.setdefault(workload.project, []).append(workload)
        if not by_project:
            return
        self.waiting = {w.id: (list(w.waiting_pods) if len(w.waiting_pods) == 1
                               else sorted(w.waiting_pods, key=natural))
                        for ws in by_project.values() for w in ws}
        session.pods_waiting = self.waiting
        for ws in by_project.values():
            for w in ws:  # what `attempt` reads
                self.asked[w.id] = self._asks(w)
                self.asked[w.id].members[w.id] = w
        if session.snapshot.nominated:
            self._place_nominated(session.snapshot.nominated)
        for within_share in (True, False):
            self.within_share = within_share
            self._refused = {k: v for k, v in self._refused.items()
                             if v[1] is not _LENDS and v[1] is not _UNSAID}
            candidates = (self._plain_within_share(by_project) if within_share
                          else by_project)
            held = session.held
            gangs = {p: [w for w in ws
                         if held.get(w.id, 0) < w.min_pods or not held.get(w.id, 0)]
                     for p, ws in candidates.items()}
            gangs = {p: ws for p, ws in gangs.items() if ws}
            self._walk(gangs if within_share else self._plain_may_place(gangs),
                       elastic=False)
            extras = {p: [w for w in ws if self.waiting[w.id]
                          and w.id not in session.unschedulable
                          and held.get(w.id, 0) >= w.min_pods and held.get(w.id, 0)]
                      for p, ws in candidates.items()}
            extras = {p: ws for p, ws in extras.items() if ws}
            self._walk(extras if within_share else self._plain_may_place(extras),
                       elastic=True)

    def _plain_within_share(self, by_project):
        session = self.session
        out = {}
        for project, workloads in by_project.items():
            keep = [w for w in workloads if self._may_fit_within_share(
                project, session.requests[w.id], session.target_pools(w))]
            if keep:
                out[project] = keep
        return out

    def _plain_may_place(self, by_project):
        """Every workload probed on its own."""
        session = self.session
        out, refused = {}, []
        self.probing = True
        try:
            for project, workloads in by_project.items():
                keep = []
                for w in workloads:
                    waiting = self.waiting[w.id]
                    held = session.held.get(w.id, 0)
                    gang = max(0, w.min_pods - held)
                    reason = None
                    if not (w.id in session.unschedulable or not waiting
                            or len(waiting) < gang):
                        reason = self._refused_everywhere(w, waiting, gang, held,
                                                          session.target_pools(w))
                    if reason is None:
                        keep.append(w)
                    else:
                        refused.append((project, -w.priority, w.submitted_at, w.id, w, reason))
                if keep:
                    out[project] = keep
        finally:
            self.probing = False
        refused.sort(key=lambda r: r[:4])
        for *_, w, reason in refused:
            self._pending(w, reason)
        return out

    def _walk(self, by_project, *, elastic):
        if not by_project:
            return
        session = self.session
        pools = list(session.pools)
        project_queues = {p: [session.queues.project(p, pool) for pool in pools]
                          for p in by_project}
        groups, group_queues = {}, {}
        for project, queues in project_queues.items():
            department = session.queues.department_of.get(project)
            group = f"d/{department}" if department else f"p/{project}"
            groups.setdefault(group, []).append(project)
            group_queues[group] = ([q.parent for q in queues if q.parent is not None]
                                   if department else queues)

        def turn(w):
            extra = session.held.get(w.id, 0) - w.min_pods if elastic else 0
            return (extra, -w.priority, w.submitted_at, w.id)

        def key(queues, w):
            return order_key(queues, list(self._needed(w, elastic)), self.capacity)

        backlog = {p: [(turn(w), w) for w in ws] for p, ws in by_project.items()}
        for heap in backlog.values():
            heapq.heapify(heap)

        def project_key(project):
            return key(project_queues[project], backlog[project][0][1])

        inner = {g: [(project_key(p), p) for p in ps] for g, ps in groups.items()}
        for heap in inner.values():
            heapq.heapify(heap)

        def group_key(group):
            return key(group_queues[group], backlog[inner[group][0][1]][0][1])

        top = [(group_key(g), g) for g in groups]
        heapq.heapify(top)
        placements = session.placements
        while top:
            _, group = heapq.heappop(top)
            _, project = heapq.heappop(inner[group])
            _, workload = heapq.heappop(backlog[project])
            placed = len(placements)
            if self.attempt(workload, elastic=elastic):
                heapq.heappush(backlog[project], (turn(workload), workload))
            elif len(placements) == placed and backlog[project]:
                need = self._needed(workload, elastic)
                while backlog[project] and self._needed(backlog[project][0][1],
                                                        elastic) == need:
                    _, w = heapq.heappop(backlog[project])
                    if self.attempt(w, elastic=elastic):
                        heapq.heappush(backlog[project], (turn(w), w))
                        break
                    if len(placements) != placed:
                        break
            if backlog[project]:
                heapq.heappush(inner[group], (project_key(project), project))
            if inner[group]:
                heapq.heappush(top, (group_key(group), group))


def _plain(snapshot, allocate=_PlainAllocate):
    original = cycle.Allocate
    cycle.Allocate = allocate
    try:
        return decide(snapshot)
    finally:
        cycle.Allocate = original


class _CheckedAllocate(Allocate):
    """Allocation that checks, at every attempt, that the workload's kept class is the one
    found afresh from the session as it stands."""

    checked = 0

    def attempt(self, workload, *, elastic=False):
        session = self.session
        held = session.held.get(workload.id, 0)
        waiting = self.waiting[workload.id]
        fresh = _Asks.of(workload, session.requests[workload.id],
                         session.target_pools(workload), held,
                         max(0, workload.min_pods - held), waiting,
                         session.unschedulable.get(workload.id))
        kept = self.asked[workload.id]
        assert kept.members.get(workload.id) is workload
        for name in _Asks.__slots__:
            if name not in ("needs", "members"):
                assert getattr(kept, name) == getattr(fresh, name), (workload.id, name)
        for walk in (False, True):
            if kept.needs[walk] is not None:
                assert kept.needs[walk] == tuple(self._needed(workload, walk)), workload.id
        _CheckedAllocate.checked += 1
        return super().attempt(workload, elastic=elastic)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alike())
def test_the_walks_decide_as_the_plain_walk(snapshot):
    assert decide(snapshot) == _plain(snapshot)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_the_walks_decide_as_the_plain_walk_on_any_cluster(snapshot):
    assert decide(snapshot) == _plain(snapshot)
    later = second_cycle(snapshot)
    assert decide(later) == _plain(later)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_a_workloads_kept_class_is_the_one_found_afresh(snapshot):
    assert decide(snapshot) == _plain(snapshot, _CheckedAllocate)
    later = second_cycle(snapshot)
    assert decide(later) == _plain(later, _CheckedAllocate)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alike())
def test_a_workloads_kept_class_is_the_one_found_afresh_when_many_ask_alike(snapshot):
    assert decide(snapshot) == _plain(snapshot, _CheckedAllocate)


def test_the_kept_classes_are_checked():
    """The checks above ran (an attempt renamed would leave them unasked)."""
    _CheckedAllocate.checked = 0
    test_a_workloads_kept_class_is_the_one_found_afresh_when_many_ask_alike()
    assert _CheckedAllocate.checked


def test_the_plain_walk_is_the_one_replaced():
    """The plain walk overrides the walk the cycle runs (a rename would leave it untested)."""
    assert "_walk" in vars(Allocate) and allocate_module.Allocate is Allocate
    assert "run" in vars(Allocate)
