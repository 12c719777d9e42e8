"""The disruptive walk's runs of waiting workloads (`Solver.preemptor_runs`), kept between
cycles with the ledger.

A run is the waiting workloads that hold nothing and ask alike (`solver.preemptor_class`) in the
same pools, in submission order. At KAI's scale some 40,000 workloads wait in about 1,200 runs,
and nearly all of them are the same `Workload` objects as the cycle before (a kept snapshot
makes a workload again only when something about it changed). A caller that keeps its `Ledger`
keeps them in it (`Ledger.runs`): a cycle takes out the waiting workloads gone from the
snapshot and puts in those that came, as a kept snapshot tells them (`changed_since` the
generation the runs were brought up to) or else found by the objects' identity (set
differences at C speed), and reads afresh only the workloads whose class this cycle's state
may change.

What a workload's class reads besides the workload itself: the session's `Request` (one per
shape of request, `framework.requests_of`: the shape stands for it), what it holds and its pods
still waiting (nothing, and every pod, unless the ledger holds pods of it or it was placed this
cycle, which gives it a pool: `Session.held_pool`), and its pools (its preference, or every pool
of the session, unless it holds a pool). So a workload that holds nothing and has no pool of
its own asks as it did when it came, while the session's pools are those it came with.
"""

from bisect import bisect_left, insort
from collections.abc import Set
from itertools import chain

from fairway_scheduler.core.framework import Session
from fairway_scheduler.core.model import Workload


def order(workload: Workload) -> tuple:
    """A run's order: by submission time, then id."""
    return (workload.submitted_at, workload.id)


def alike(session: Session, workload: Workload) -> tuple | None:
    """What a waiting workload asks and where, in terms that outlive the cycle: workloads of
    one key share their class and pools in every cycle where neither holds a pool. None where
    that is read afresh every cycle: a master sized apart or a topology placement (never in a
    run), or a workload with a pool of its own when it came."""
    if workload.id in session.held_pool:
        return None
    request = session.requests[workload.id]
    if request.master is not None or request.topology is not None:
        return None
    w = workload
    return (w.gpus_per_pod, w.gpu_portion, w.gpu_memory_mib, w.cpu_millis, w.memory_mib,
            w.node_type, w.topology_required, w.topology_preferred, w.project, w.preemptible,
            w.priority, w.min_pods, len(w.waiting_pods), session.target_pools(w))


class WaitingRuns:
    """The snapshot's waiting workloads as of the last cycle, grouped by `alike`."""

    def __init__(self) -> None:
        self.generation: int | None = None  # of the kept snapshot they were brought up to
        self._reset(())

    def _reset(self, pools: tuple[str, ...]) -> None:
        self.pools = pools  # the session's pools the keys were found with
        self.objects: dict[int, Workload] = {}  # by `id()`: every waiting workload
        self.workload: dict[str, Workload] = {}  # the same, by workload id
        self.key: dict[str, tuple | None] = {}  # by workload id: its `alike`
        self.groups: dict[tuple, list[Workload]] = {}  # by `alike`, in `order`
        self.apart: dict[str, Workload] = {}  # `alike` None: read afresh every cycle

    def sync(self, session: Session) -> bool:
        """Brought up to the session's waiting workloads. False (and nothing kept) when two of
        them share an id: the session then knows one request for both."""
        pools = tuple(session.pools)
        snapshot = session.snapshot
        changed = None
        if pools != self.pools:
            self._reset(pools)
        elif self.generation is not None:
            changed = snapshot.changed_since(self.generation)
        self.generation = None
        if changed is not None:
            self._apply(session, *changed)
            self.generation = snapshot.generation
            return True
        waiting = session.waiting
        now = dict(zip(map(id, waiting), waiting, strict=True))
        objects = self.objects
        for gone in objects.keys() - now.keys():
            self._leave(objects.pop(gone))
        for came in now.keys() - objects.keys():
            workload = objects[came] = now[came]
            self._enter(session, workload)
        if len(self.key) != len(objects):
            self._reset(pools)
            return False
        self.generation = snapshot.generation
        return True

    def _apply(self, session: Session, made: dict[str, Workload], gone: Set[str]) -> None:
        """The workloads the kept snapshot made again (or new) put in again, those gone
        taken out."""
        objects, known = self.objects, self.workload
        for wid in chain(gone, made):
            workload = known.get(wid)
            if workload is not None:
                del objects[id(workload)]
                self._leave(workload)
        for workload in made.values():
            if workload.waiting_pods:
                objects[id(workload)] = workload
                self._enter(session, workload)

    def _enter(self, session: Session, workload: Workload) -> None:
        self.workload[workload.id] = workload
        key = self.key[workload.id] = alike(session, workload)
        if key is None:
            self.apart[workload.id] = workload
            return
        group = self.groups.get(key)
        if group is None:
            self.groups[key] = [workload]
        else:
            insort(group, workload, key=order)

    def _leave(self, workload: Workload) -> None:
        del self.workload[workload.id]
        key = self.key.pop(workload.id)
        if key is None:
            del self.apart[workload.id]
            return
        group = self.groups[key]
        del group[bisect_left(group, order(workload), key=order)]
        if not group:
            del self.groups[key]
