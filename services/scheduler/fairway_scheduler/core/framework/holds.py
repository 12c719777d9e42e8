"""The disruptive actions' index of running pods, kept between cycles with the ledger.

The `Solver` reads, every cycle that may disrupt, every pod held on a ready node of a known pool
by a workload of the snapshot, as `Hold`s per workload; and, per node, per queue and per
project, which workloads hold what where. At KAI's scale that is 100,000 pods, nearly all of
them as they were the cycle before. A caller that keeps its `Ledger` between cycles (the
service, the benchmark) keeps this index in it (`Ledger.index`): the ledger tells it which
workloads it held or released pods of, and the index makes again only those workloads' part,
and those whose `Workload` in the snapshot is another object than the one it read (the kept
snapshot makes a workload's part again only when something about it changed, and tells which
it made: `ClusterSnapshot.changed_since` the generation the index was brought up to; of
another snapshot, the objects' identities tell). A snapshot with other nodes or pools makes it
all again.

What a cycle reads from it is what `Solver` built afresh before: the same holds per workload,
in the ledger's order of their first pod (`first`), and the same sums.
"""

from bisect import bisect_left, insort
from collections.abc import Set
from itertools import chain
from operator import attrgetter

from fairway_scheduler.core.framework.session import Hold
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.model import ClusterSnapshot, Workload
from fairway_scheduler.core.nodes import natural

_ID = attrgetter("id")


class HoldIndex:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        # (workload, pod) -> its place in the ledger's order (the order of `Ledger.entries`:
        # a pod held again goes last, as in the ledger's dict)
        self.seq: dict[tuple[str, str], int] = {}
        self.next_seq = 0
        self.pods_of: dict[str, dict[str, None]] = {}  # workload -> its pods held, any node
        self.touched: set[str] = set()  # workloads the ledger held or released pods of since
        for (wid, pod), _ in ledger.entries():
            self._held(wid, pod)
        self.usable: dict[str, tuple[int, str]] | None = None
        self.generation: int | None = None  # of the kept snapshot it was brought up to
        self._reset()

    # told by the ledger -----------------------------------------------------------------
    def _held(self, wid: str, pod: str) -> None:
        self.seq[(wid, pod)] = self.next_seq
        self.next_seq += 1
        pods = self.pods_of.get(wid)
        if pods is None:
            self.pods_of[wid] = {pod: None}
        else:
            pods[pod] = None

    def held(self, workload_id: str, pod: str) -> None:
        self._held(workload_id, pod)
        self.touched.add(workload_id)

    def released(self, workload_id: str, pod: str) -> None:
        wid = workload_id
        self.seq.pop((wid, pod), None)
        pods = self.pods_of.get(wid)
        if pods is not None:
            pods.pop(pod, None)
            if not pods:
                del self.pods_of[wid]
        self.touched.add(wid)

    # the cycle's view ---------------------------------------------------------------------
    def _reset(self) -> None:
        # per workload of the snapshot holding pods on usable nodes: its holds (natural order
        # of pods; those being evicted apart, in `freed`), and the `Workload` they were made
        # with (`objects`: by `id`, to find those the snapshot replaced)
        self.holds: dict[str, list[Hold]] = {}  # in the order of `first`
        self.first: dict[str, int] = {}  # the `seq` of its first hold
        self.freed: dict[str, list[tuple[int, Hold]]] = {}
        self.workload: dict[str, Workload] = {}
        self.objects: dict[int, str] = {}
        self.absent: set[str] = set()  # holding, but not in the snapshot (looked at again)
        # workloads whose holds went last in `holds` this sync (new, or another first pod):
        # the others stay in the order of `first`
        self.appended: list[str] = []
        # what the holds add up to (see `Solver`): workloads per node and per (project, pool)
        # of their first hold; per (project, pool), the nodes its preemptible workloads hold
        # GPUs on (how many workloads each); per node, the milli-GPUs each project's
        # preemptible workloads hold there
        self.node_wids: dict[int, dict[str, None]] = {}
        self.queue_wids: dict[tuple[str, str], dict[str, None]] = {}
        self.gpu_nodes: dict[tuple[str, str], dict[int, int]] = {}
        self.node_held: dict[int, dict[str, int]] = {}
        # per (project, pool): its preemptible workloads by priority (how many); in victim
        # order (`victim_order`), and those running pods above their minimum with how many
        self.priorities: dict[tuple[str, str], dict[int, int]] = {}
        self.victims: dict[tuple[str, str], list[tuple]] = {}
        self.elastic: dict[tuple[str, str], list[tuple[tuple, int]]] = {}
        # per pool (of a workload's first hold) and node: the GPU pods there of preemptible
        # workloads running at least their minimum, by workload (what consolidation may move,
        # less what the cycle changes: `movable`); and the nodes whose list is to make again
        self.movers: dict[tuple[str, int], dict[str, list[Hold]]] = {}
        self._movable: dict[str, dict[int, list[Hold]]] = {}
        self._movers_changed: dict[str, set[int]] = {}

    def sync(self, snapshot: ClusterSnapshot, usable: dict[str, tuple[int, str]]) -> None:
        """Brought up to the snapshot (`usable`: the ready nodes of known pools, by name: their
        `NodeState.idx` and pool)."""
        workloads = snapshot.workloads
        generation, self.generation = self.generation, None
        if usable != self.usable:
            self._reset()
            self.usable = usable
            self.touched.clear()
            by_id = dict(zip(map(_ID, workloads), workloads, strict=True))
            for wid in self.pods_of:
                self._refresh(wid, by_id.get(wid))
            self._reorder()
            self.appended = []
            self.generation = snapshot.generation
            return
        dirty = self.touched
        self.touched = set()
        changed = snapshot.changed_since(generation)
        if changed is not None:
            self._apply(workloads, dirty, *changed)
        else:
            by_id = dict(zip(map(_ID, workloads), workloads, strict=True))
            if len(by_id) == len(workloads):
                present = set(map(id, workloads))
                dirty.update(self.objects[i] for i in self.objects.keys() - present)
            else:  # the same id twice: the last one counts, as in `by_id`
                dirty.update(wid for wid, w in self.workload.items() if by_id.get(wid) is not w)
            dirty.update(wid for wid in self.absent if wid in by_id)
            for wid in dirty:
                self._refresh(wid, by_id.get(wid))
        self._order_appended()
        self.generation = snapshot.generation

    def _apply(self, workloads: tuple[Workload, ...], dirty: set[str],
               made: dict[str, Workload], gone: Set[str]) -> None:
        """The parts made again of the workloads the ledger held or released pods of (`dirty`)
        and of those the kept snapshot made again (or new) or dropped, where held."""
        workload, absent = self.workload, self.absent
        dirty.update(wid for wid in chain(gone, made) if wid in workload or wid in absent)
        by_id: dict[str, Workload] | None = None
        for wid in dirty:
            now = made.get(wid)
            if now is None and wid not in gone and wid not in absent:
                # the same object as the snapshot before: the one read then, else looked up
                now = workload.get(wid)
                if now is None:
                    if by_id is None:
                        by_id = dict(zip(map(_ID, workloads), workloads, strict=True))
                    now = by_id.get(wid)
            self._refresh(wid, now)

    def _order_appended(self) -> None:
        """`holds` in the order of `first` again: the workloads that went last are sorted
        among themselves, and all of them only when one of them goes before the others."""
        appended, self.appended = self.appended, []
        if not appended:
            return
        first, holds = self.first, self.holds
        appended = [wid for wid in appended if wid in holds]
        if len(appended) > 1:
            appended.sort(key=first.__getitem__)
            for wid in appended:
                holds[wid] = holds.pop(wid)
        before = None  # the last workload of those that stayed in place
        rest = reversed(holds)
        for _ in range(len(appended) + 1):
            before = next(rest, None)
        if before is not None and appended and first[before] > first[appended[0]]:
            self._reorder()

    def _reorder(self) -> None:
        first = self.first
        self.holds = {wid: self.holds[wid] for wid in sorted(self.holds, key=first.__getitem__)}

    def _refresh(self, wid: str, workload: Workload | None) -> None:
        """The workload's part made again from what the ledger holds of it now."""
        self.absent.discard(wid)
        self.freed.pop(wid, None)
        known = self.workload.pop(wid, None)
        if known is not None:
            del self.objects[id(known)]
        old = self.holds.get(wid)
        if old is not None:
            self._add(wid, old, -1)
        pods = self.pods_of.get(wid)
        if pods and workload is None:
            self.absent.add(wid)
        holds: list[tuple[int, Hold]] = []
        if pods and workload is not None:
            self.workload[wid] = workload
            self.objects[id(workload)] = wid
            entry_of, usable, seqs = self.ledger.entry, self.usable, self.seq
            assert usable is not None  # (`sync` sets it before any workload is indexed)
            evicting = workload.evicting_pods
            freed: list[tuple[int, Hold]] = []
            for pod in pods:
                entry = entry_of(wid, pod)
                at = usable.get(entry[0])
                if at is None:
                    continue
                hold = Hold(workload, pod, entry[0], at[0], at[1], entry[1], entry[2],
                            entry[3], entry[4])
                if evicting and pod in evicting:
                    freed.append((seqs[(wid, pod)], hold))
                else:
                    holds.append((seqs[(wid, pod)], hold))
            if freed:
                self.freed[wid] = freed
        if not holds:
            if old is not None:
                del self.holds[wid]
                del self.first[wid]
            return
        first = min(seq for seq, _ in holds)
        hold_list = [h for _, h in holds]
        if len(hold_list) > 1:
            hold_list.sort(key=lambda h: natural(h.pod))
        if old is not None and self.first[wid] == first:
            self.holds[wid] = hold_list  # where it was: the same first pod
        else:
            if old is not None:
                del self.holds[wid]
            self.holds[wid] = hold_list  # last now: put in order after the sync
            self.appended.append(wid)
            self.first[wid] = first
        self._add(wid, hold_list, +1)

    def _add(self, wid: str, holds: list[Hold], sign: int) -> None:
        """The workload's holds added to the sums (`sign` +1), or taken out (-1)."""
        workload = holds[0].workload
        key = (workload.project, holds[0].pool)
        for idx in {h.idx for h in holds}:
            _member(self.node_wids, idx, wid, sign)
        _member(self.queue_wids, key, wid, sign)
        if not workload.preemptible:
            return
        _count(self.priorities, key, workload.priority, sign)
        order = victim_order(workload)
        _sorted(self.victims, key, order, sign)
        if len(holds) > workload.min_pods:
            _sorted(self.elastic, key, (order, len(holds) - workload.min_pods), sign)
        for idx in {h.idx for h in holds if h.gpu}:
            _count(self.gpu_nodes, key, idx, sign)
        for h in holds:
            if h.gpu:
                _count(self.node_held, h.idx, workload.project, sign * h.gpu)
        if len(holds) < workload.min_pods:
            return
        on: dict[int, list[Hold]] = {}
        for h in holds:
            if h.devices:
                on.setdefault(h.idx, []).append(h)
        pool = holds[0].pool
        changed = self._movers_changed.setdefault(pool, set())
        for idx, here in on.items():
            if sign > 0:
                self.movers.setdefault((pool, idx), {})[wid] = here
            else:
                _member(self.movers, (pool, idx), wid, sign)
            changed.add(idx)

    def movable(self, pool: str) -> dict[int, list[Hold]]:
        """Per node, the GPU pods of the pool's preemptible workloads that run at least their
        minimum (a workload's pool: its first hold's), in the order of the workloads' first
        pods, each workload's in natural order: as a walk of `holds` finds them. Read only."""
        kept = self._movable.setdefault(pool, {})
        first = self.first
        for idx in self._movers_changed.pop(pool, ()):
            by_wid = self.movers.get((pool, idx))
            if by_wid is None:
                kept.pop(idx, None)
                continue
            wids = sorted(by_wid, key=first.__getitem__) if len(by_wid) > 1 else by_wid
            kept[idx] = [h for wid in wids for h in by_wid[wid]]
        return kept


def victim_order(workload: Workload) -> tuple:
    """A preemptible workload's place among its queue's victims: lowest priority, then the
    newest, first."""
    return (workload.priority, -workload.submitted_at.timestamp(), workload.id)


def _sorted(lists: dict, key: object, item: tuple, sign: int) -> None:
    """`item` put into (+1) or taken out of (-1) the sorted list `lists[key]`."""
    items = lists.setdefault(key, [])
    if sign > 0:
        insort(items, item)
    else:
        del items[bisect_left(items, item)]
        if not items:
            del lists[key]


def _member(members: dict, key: object, wid: str, sign: int) -> None:
    inner = members.setdefault(key, {})
    if sign > 0:
        inner[wid] = None
    else:
        del inner[wid]
        if not inner:
            del members[key]


def _count(sums: dict, key: object, member: object, by: int) -> None:
    """`sums[key][member] += by`, keeping no zeros (nor empty dicts)."""
    inner = sums.setdefault(key, {})
    total = inner.get(member, 0) + by
    if total:
        inner[member] = total
    else:
        del inner[member]
        if not inner:
            del sums[key]
