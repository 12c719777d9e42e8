"""What a kept snapshot tells of its workloads' changes (`WorkloadChanges`), and the structures
kept with the ledger that are brought up to a snapshot by it (`WaitingIndex`, `WaitingRuns`,
`HoldIndex`, allocation's `WaitingClasses`): cycle after cycle of the service's state
(workloads arriving, placed, bound, running, evicted, finishing, projects and nodes changing),
decided on the kept snapshot and ledger, with plain snapshots, snapshots taken and not decided
(one, or more than the changes reach back over) and snapshots with other workloads in between,
the kept structures are those found afresh, and the cycle decides as on everything built
afresh."""

import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from fairway_contracts.events import ProjectChanged
from fairway_contracts.workloads import Phase
from fairway_scheduler import core
from fairway_scheduler.core.actions.allocate import Allocate, WaitingClasses
from fairway_scheduler.core.actions.runs import WaitingRuns
from fairway_scheduler.core.cluster import ClusterState, PodStatus, WorkloadRequest, WorkloadStatus
from fairway_scheduler.core.framework.holds import HoldIndex
from fairway_scheduler.core.framework.session import Session, WaitingIndex
from fairway_scheduler.core.model import STEPS_KEPT, WorkloadChanges
from tests.scheduler.test_waiting_classes import check as check_classes

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def waiting_seen(index: WaitingIndex) -> dict:
    """The index's parts and sums, in terms two ledgers share (requests are another object
    in each: by value)."""
    return {
        "parts": sorted(part.workload.id for part in index.parts.values()),
        "requests": index.requests, "targets": index.targets,
        "unschedulable": index.unschedulable, "pool_missing": set(index.pool_missing),
        "asked": {(key[0], key[1], entry[1]): entry[0] for key, entry in index.asked.items()},
    }


def same_runs(kept: WaitingRuns, fresh: WaitingRuns, waiting: set[int]) -> None:
    """The kept runs hold the snapshot's waiting objects, grouped by their key, in order. A
    key is what the workload asked when it came (one that holds a pool this cycle, where it
    came before, is read afresh by the solver): it differs from a fresh one only there."""
    assert kept.objects.keys() == waiting
    assert kept.key.keys() == fresh.key.keys()
    both = [wid for wid, key in kept.key.items() if key is not None and fresh.key[wid]]
    assert [kept.key[wid] for wid in both] == [fresh.key[wid] for wid in both]
    groups: dict[tuple, list[str]] = {}
    for w in sorted(kept.objects.values(), key=lambda w: (w.submitted_at, w.id)):
        key = kept.key[w.id]
        if key is not None:
            groups.setdefault(key, []).append(w.id)
    assert {key: [w.id for w in group] for key, group in kept.groups.items()} == groups
    assert set(kept.apart) == {wid for wid, key in kept.key.items() if key is None}


def holds_seen(index: HoldIndex) -> dict:
    """The index as a cycle reads it: the holds in order, and the sums."""
    return {"holds": list(index.holds.items()),
            "freed": {wid: [h for _, h in freed] for wid, freed in index.freed.items()},
            "absent": index.absent, "node_wids": index.node_wids,
            "queue_wids": index.queue_wids, "gpu_nodes": index.gpu_nodes,
            "node_held": index.node_held, "priorities": index.priorities,
            "victims": index.victims, "elastic": index.elastic, "movers": index.movers}


def compare(snapshot: core.ClusterSnapshot, ledger: core.Ledger) -> core.CycleResult:
    """The ledger's kept structures, as the cycle on `snapshot` left them, against those a
    cycle on a ledger built afresh finds (and the same decisions); its hold index against one
    made afresh from the same ledger (the holds' order is the ledger's)."""
    fresh = core.Ledger.of(snapshot)
    # allocation's classes, brought up to the snapshot, against those found afresh
    session = Session(snapshot, ledger)
    Allocate(session)._find_classes()
    assert isinstance(ledger.asks, WaitingClasses)
    check_classes(ledger.asks, session)
    result = core.decide(snapshot, ledger)
    assert result == core.decide(snapshot, fresh)
    objects = {id(w) for w in snapshot.workloads}
    assert isinstance(ledger.waiting, WaitingIndex)
    assert isinstance(fresh.waiting, WaitingIndex)
    assert waiting_seen(ledger.waiting) == waiting_seen(fresh.waiting)
    assert all(key in objects for key in ledger.waiting.parts)
    if isinstance(fresh.runs, WaitingRuns):
        assert isinstance(ledger.runs, WaitingRuns)
        same_runs(ledger.runs, fresh.runs,
                  {id(w) for w in snapshot.workloads if w.waiting_pods})
    if isinstance(fresh.index, HoldIndex):
        kept = ledger.index
        assert isinstance(kept, HoldIndex) and kept.usable is not None
        afresh = HoldIndex(ledger)
        afresh.sync(snapshot, dict(kept.usable))
        assert holds_seen(kept) == holds_seen(afresh)
        assert all(id(w) in objects for w in kept.workload.values())
    return result


class Service:
    """The service's state, changed as events and cycles change it."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.state = ClusterState()
        self.sequence: dict[str, int] = {}
        self.pods_of: dict[str, list[PodStatus]] = {}
        self.binding: list[core.Placement] = []
        self.evicting: list[core.Eviction] = []
        self.arrived = 0
        for n in range(4):
            self.state.put_node(core.Node(f"n{n}", "a100" if n % 2 else "t4", True, 4))

    def report(self, wid: str, phase: Phase, pods: list[PodStatus]) -> None:
        self.sequence[wid] = self.sequence.get(wid, 0) + 1
        self.pods_of[wid] = pods
        status = WorkloadStatus(workload_id=wid, project="p", sequence=self.sequence[wid],
                                phase=phase, pods=tuple(pods), time=T0)
        keep = status.pods_holding()
        self.state.apply_status(status, released=[
            p for p in self.state.allocations.pods_of(wid) if p not in keep])

    def events(self) -> None:
        """A few of lifecycle's and the API's events."""
        rng, state = self.rng, self.state
        for _ in range(rng.randint(0, 4)):
            roll = rng.random()
            requested = [w for w in self.pods_of if w in state.requests]
            live = [w for w in self.pods_of
                    if w in state.requests or state.allocations.pods_of(w)]
            if roll < 0.35 or not live:
                wid = f"w{self.arrived}"
                self.arrived += 1
                n = rng.randint(1, 3)
                state.add_request(WorkloadRequest(
                    id=wid, project=rng.choice(["team-a", "team-b"]), priority_class="train",
                    priority=rng.choice([50, 100]), preemptible=rng.random() < 0.7,
                    node_pools=(), pods=n, min_pods=rng.randint(1, n),
                    gpus_per_pod=rng.randint(0, 2), submitted_at=T0))
                self.report(wid, Phase.PENDING, [PodStatus(f"{wid}-{i}") for i in range(n)])
            elif roll < 0.55 and requested:  # bound pods run; one may be lost (below its
                wid = rng.choice(requested)  # minimum)
                pods = [PodStatus(p.name, node=p.node, phase="Running") if p.node else p
                        for p in self.pods_of[wid]]
                if rng.random() < 0.2:
                    pods[0] = PodStatus(pods[0].name, phase="Failed")
                self.report(wid, Phase.RUNNING, pods)
            elif roll < 0.75:  # over: every pod done, or a leftover still running
                wid = rng.choice(live)
                leftover = rng.random() < 0.3
                self.report(wid, Phase.COMPLETED, [
                    PodStatus(p.name, node=p.node, phase="Running" if leftover and i == 0
                              else "Succeeded") for i, p in enumerate(self.pods_of[wid])])
            elif roll < 0.77:  # a project's default pools change: every part made again
                state.put_project(ProjectChanged(
                    event_id=f"e{self.arrived}", project_id="team-a", name="team-a",
                    default_node_pools=rng.choice([[], ["a100"], ["t4", "a100"]])))
            elif roll < 0.8:  # a node changes (the ledger is built afresh)
                n = rng.randrange(5)
                state.put_node(core.Node(f"n{n}", rng.choice(["a100", "t4"]),
                                         rng.random() < 0.9, 4))
            elif self.evicting:  # lifecycle evicts: the pods wait again
                eviction = self.evicting.pop(0)
                gone = set(eviction.pods or [p.name for p in self.pods_of[eviction.workload_id]])
                self.report(eviction.workload_id, Phase.PENDING, [
                    PodStatus(p.name) if p.name in gone else p
                    for p in self.pods_of[eviction.workload_id]])
        while self.binding and rng.random() < 0.6:  # lifecycle binds what was placed
            placement = self.binding.pop(0)
            if placement.workload_id not in state.requests:
                continue
            wid = placement.workload_id  # (its pods still placed: some may be gone)
            where = {p.pod: p.node for p in placement.pods if (wid, p.pod) in state.allocations}
            self.report(wid, Phase.INITIALIZING, [
                PodStatus(p.name, node=where.get(p.name, p.node), phase=p.phase)
                for p in self.pods_of[wid]])

    def settle(self, result: core.CycleResult) -> None:
        """The cycle's decisions as the service records them."""
        self.state.add_evictions(result.evictions)
        self.evicting.extend(result.evictions)
        for placement in result.placements:
            if not placement.pipelined:
                self.state.add_placement(placement)
                self.binding.append(placement)
        self.state.nominated = result.nominated


@pytest.mark.parametrize("seed", range(16))
def test_structures_brought_up_by_the_changes_are_those_found_afresh(seed):
    rng = random.Random(seed)
    service = Service(rng)
    state = service.state
    told = classes_told = 0
    for step in range(60):
        service.events()
        roll = rng.random()
        if roll < 0.1:  # snapshots taken and not decided: one, or more than are told
            for _ in range(1 if rng.random() < 0.7 else STEPS_KEPT + 1):
                state.snapshot(T0)
                service.events()
        snapshot = state.snapshot(T0)
        assert snapshot == state.snapshot(T0, cached=False), f"step {step}"
        changes = snapshot.kept_changes
        assert changes is not None
        assert changes.waiting == tuple(w for w in snapshot.workloads if w.waiting_pods)
        assert changes.below_min == any(w.below_min_since for w in snapshot.workloads)
        assert changes.evicting == {w.id for w in snapshot.workloads if w.evicting_pods}
        ledger = state.kept_ledger(snapshot)
        if ledger is None:
            service.settle(core.decide(snapshot))
            continue
        if roll > 0.9:  # a plain snapshot decided on the kept ledger
            snapshot = state.snapshot(T0, cached=False)
        elif roll > 0.85:  # the changes with other workloads (alike, other objects)
            snapshot = replace(snapshot, workloads=tuple(replace(w) for w in snapshot.workloads))
            assert snapshot.kept_changes is None
        kept = ledger.waiting
        told += (isinstance(kept, WaitingIndex)
                 and snapshot.changed_since(kept.generation) is not None)
        classes_told += (isinstance(ledger.asks, WaitingClasses)
                         and snapshot.changed_since(ledger.asks.generation) is not None)
        service.settle(compare(snapshot, ledger))
    assert told > 15, "the changes were told (not only walked)"
    assert classes_told > 15, "the changes were told to the classes (not only walked)"


def test_changes_are_told_only_back_to_the_snapshots_they_reach():
    """A structure brought up to another snapshot than one of those the changes start from
    (of another state, skipped too far back, or unknown) is told nothing: it walks."""
    service = Service(random.Random(1))
    state = service.state
    service.events()
    first = state.snapshot(T0)
    assert first.generation is not None
    seen = [first.generation]
    for _ in range(STEPS_KEPT + 2):
        service.events()
        seen.append(state.snapshot(T0).generation)  # type: ignore[arg-type]
    last = state.snapshot(T0)
    assert last.changed_since(last.generation) == ({}, set())  # the same snapshot again
    assert last.changed_since(seen[-1]) is not None
    assert last.changed_since(seen[-STEPS_KEPT]) is not None
    assert last.changed_since(seen[-STEPS_KEPT - 1]) is None  # too far back
    assert last.changed_since(first.generation) is None
    assert last.changed_since(None) is None
    other = ClusterState().snapshot(T0)
    assert other.generation not in seen  # no two states share a generation
    assert state.snapshot(T0, cached=False).changed_since(last.generation) is None
    assert replace(last, workloads=()).changed_since(seen[-1]) is None


def test_a_workload_gone_and_back_is_told_made_again():
    changes = WorkloadChanges(3, (), (), steps=(
        (1, 2, {"a": "a1"}, frozenset({"b"})),  # type: ignore[dict-item]
        (2, 3, {"b": "b2"}, frozenset({"a", "c"}))))  # type: ignore[dict-item]
    assert changes.since(1) == ({"b": "b2"}, {"a", "b", "c"})
    assert changes.since(2) == ({"b": "b2"}, {"a", "c"})
    assert changes.since(0) is None
