"""How events become the scheduler's state, and the snapshot a cycle sees (pure, no I/O)."""

import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from fairway_contracts.events import ProjectChanged
from fairway_contracts.workloads import Phase
from fairway_scheduler import core
from fairway_scheduler.core.cluster import ClusterState, PodStatus, WorkloadRequest, WorkloadStatus
from fairway_scheduler.service import decision_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def request(wid: str = "w1", gpus: int = 2, pods: int = 1) -> WorkloadRequest:
    return WorkloadRequest(id=wid, project="team-a", priority_class="train", priority=50,
                           preemptible=True, node_pools=(), pods=pods, min_pods=pods,
                           gpus_per_pod=gpus, submitted_at=T0)


def status(wid: str = "w1", sequence: int = 1, phase: Phase = Phase.PENDING,
           *pods: PodStatus) -> WorkloadStatus:
    return WorkloadStatus(workload_id=wid, project="team-a", sequence=sequence, phase=phase,
                          pods=pods or (PodStatus(f"{wid}-0"),))


def test_a_workload_is_schedulable_once_request_and_pods_are_known():
    state = ClusterState()
    state.apply_status(status(), released=())
    assert state.snapshot().workloads == ()

    state.add_request(request())

    [workload] = state.snapshot().workloads
    assert workload.waiting_pods == ("w1-0",)
    assert workload.gpus_per_pod == 2


def test_a_pod_with_an_allocation_does_not_wait_again():
    state = ClusterState()
    state.add_request(request())
    state.apply_status(status(), released=())
    state.add_placement(core.Placement("w1", (core.PodPlacement("w1-0", "n1", (0, 1)),)))

    [workload] = state.snapshot().workloads
    assert workload.waiting_pods == ()


def test_a_pod_bound_without_our_decision_holds_its_gpus():
    state = ClusterState()
    state.add_request(request(gpus=3))
    state.apply_status(status("w1", 2, Phase.RUNNING, PodStatus("w1-0", node="n1",
                                                                phase="Running")), released=())

    snapshot = state.snapshot()
    assert snapshot.allocations == (core.Allocation("w1", "w1-0", "n1", unknown_devices=3),)
    assert snapshot.workloads[0].waiting_pods == ()


def test_finished_pods_neither_wait_nor_hold():
    done = status("w1", 3, Phase.RUNNING, PodStatus("w1-0", node="n1", phase="Succeeded"),
                  PodStatus("w1-1", node=None, phase="Failed"), PodStatus("w1-2", node="n1",
                                                                           phase="Running"))
    assert done.pods_holding() == frozenset({"w1-2"})
    state = ClusterState()
    state.add_request(request(pods=3))
    state.apply_status(done, released=())
    assert state.snapshot().workloads[0].waiting_pods == ()


def test_a_terminal_phase_releases_everything_and_forgets_the_workload():
    state = ClusterState()
    state.add_request(request())
    state.apply_status(status(), released=())
    state.add_placement(core.Placement("w1", (core.PodPlacement("w1-0", "n1", (0, 1)),)))
    completed = status("w1", 2, Phase.COMPLETED, PodStatus("w1-0", node="n1", phase="Succeeded"))
    assert completed.pods_holding() == frozenset()

    state.apply_status(completed, released=["w1-0"])

    assert state.snapshot() == core.ClusterSnapshot()
    assert state.requests == {} and state.allocations == {}


def test_the_version_moves_only_on_change():
    state = ClusterState()
    state.put_node(core.Node("n1", "default", True, 8))
    before = state.version
    state.set_pending([])
    assert state.version == before


def test_decision_ids_are_deterministic():
    assert decision_id("w1", 1, ["b", "a"]) == decision_id("w1", 1, ["a", "b"])
    assert decision_id("w1", 1, ["a"]) != decision_id("w1", 2, ["a"])
    assert decision_id("w1", 1, ["a"]) != decision_id("w2", 1, ["a"])


def test_a_gang_whose_pods_finish_one_by_one_is_not_below_its_minimum():
    """Pods that succeeded are done, not lost: the last running pods of a finishing gang are
    never taken for a stale gang (and evicted after the grace period)."""
    state = ClusterState()
    state.add_request(request(pods=3))
    finishing = status("w1", 4, Phase.RUNNING,
                       PodStatus("w1-0", node="n1", phase="Succeeded"),
                       PodStatus("w1-1", node="n1", phase="Succeeded"),
                       PodStatus("w1-2", node="n1", phase="Running"))
    state.apply_status(finishing, released=["w1-0", "w1-1"], now=T0)
    assert state.snapshot().workloads[0].below_min_since is None

    lost = status("w1", 5, Phase.RUNNING,
                  PodStatus("w1-0", node="n1", phase="Succeeded"),
                  PodStatus("w1-1", node="n1", phase="Failed"),
                  PodStatus("w1-2", node="n1", phase="Running"))
    state.apply_status(lost, released=["w1-1"], now=T0)
    assert state.snapshot().workloads[0].below_min_since == T0


def test_allocations_know_each_workloads_pods_through_every_change():
    from fairway_scheduler.core.cluster import Allocations

    allocations = Allocations()
    for wid, pod in (("w1", "a"), ("w1", "b"), ("w2", "a")):
        allocations[(wid, pod)] = core.Allocation(wid, pod, "n1", (0,))
    assert allocations.pods_of("w1") == {"a", "b"} and allocations.pods_of("w2") == {"a"}
    del allocations[("w1", "a")]
    assert allocations.pop(("w1", "b")).pod == "b"
    assert allocations.pop(("w1", "b"), None) is None
    assert allocations.pods_of("w1") == frozenset() and allocations.pods_of("w2") == {"a"}
    assert dict(allocations) == {("w2", "a"): core.Allocation("w2", "a", "n1", (0,))}
    with pytest.raises(TypeError):
        allocations.update({("w3", "a"): core.Allocation("w3", "a", "n1")})


def test_a_finished_workload_releases_only_its_own_allocations():
    state = ClusterState()
    for wid in ("w1", "w2"):
        state.add_request(request(wid, pods=2))
        state.apply_status(status(wid, 1, Phase.PENDING, PodStatus(f"{wid}-0"),
                                  PodStatus(f"{wid}-1")), released=())
        state.add_placement(core.Placement(wid, (core.PodPlacement(f"{wid}-0", "n1", (0,)),
                                                 core.PodPlacement(f"{wid}-1", "n1", (1,)))))
    state.apply_status(status("w1", 2, Phase.COMPLETED,
                              PodStatus("w1-0", node="n1", phase="Succeeded"),
                              PodStatus("w1-1", node="n1", phase="Succeeded")), released=())
    assert set(state.allocations) == {("w2", "w2-0"), ("w2", "w2-1")}
    assert state.pods_held(["w1", "w2"]) == {"w1": set(), "w2": {"w2-0", "w2-1"}}


def test_a_finished_workloads_running_pods_hold_their_devices_until_they_are_gone():
    """A PyTorch job completes with its master while a worker still runs (it is being
    deleted): the worker's devices stay taken until lifecycle reports it gone, or the next
    placement there would be refused by the kubelet."""
    state = ClusterState()
    state.add_request(request(pods=2))
    state.apply_status(status("w1", 1, Phase.PENDING, PodStatus("w1-0"), PodStatus("w1-1")),
                       released=())
    state.add_placement(core.Placement("w1", (core.PodPlacement("w1-0", "n1", (0, 1)),
                                              core.PodPlacement("w1-1", "n1", (2, 3)))))
    completed = status("w1", 2, Phase.COMPLETED,
                       PodStatus("w1-0", node="n1", phase="Succeeded"),
                       PodStatus("w1-1", node="n1", phase="Running"))
    assert completed.pods_holding() == {"w1-1"}
    state.apply_status(completed, released=["w1-0"])
    assert set(state.allocations) == {("w1", "w1-1")}
    assert state.snapshot().workloads == ()  # nothing more to place

    gone = status("w1", 3, Phase.COMPLETED, PodStatus("w1-0", node="n1", phase="Succeeded"))
    state.apply_status(gone, released=["w1-1"])
    assert state.snapshot() == core.ClusterSnapshot()


def test_a_kept_snapshot_is_the_fresh_one_order_included():
    """A status before its request, a workload over and submitted again under the same id,
    a pod bound without a decision of ours, an org change with a status after it: after each,
    the snapshot kept between cycles equals the one made afresh (the order of its workloads
    and allocations too), and a cycle decides the same on either."""
    state = ClusterState()
    for n in range(2):
        state.put_node(core.Node(f"n{n}", "default", True, 4))

    def check() -> list[str]:
        kept = state.snapshot(T0)
        fresh = state.snapshot(T0, cached=False)
        assert kept == fresh
        assert core.decide(kept, state.kept_ledger(kept)) == core.decide(fresh)
        return [w.id for w in kept.workloads]

    state.apply_status(status("w1"), released=())  # its request comes later
    assert check() == []
    state.add_request(request("w2"))
    state.apply_status(status("w2"), released=())
    assert check() == ["w2"]
    state.add_request(request("w1"))
    assert check() == ["w1", "w2"]  # in the order of the statuses
    state.apply_status(status("w1", 2, Phase.COMPLETED, PodStatus("w1-0", phase="Succeeded")),
                       released=())
    assert check() == ["w2"]
    state.add_request(request("w1"))
    state.apply_status(status("w1", 3), released=())
    assert check() == ["w2", "w1"]  # over and back: last
    state.add_request(request("w3", gpus=1))
    state.apply_status(status("w3", 1, Phase.RUNNING,
                              PodStatus("w3-0", node="n1", phase="Running")), released=())
    state.add_request(request("w4", gpus=1))
    state.apply_status(status("w4", 1, Phase.RUNNING,
                              PodStatus("w4-0", node="n0", phase="Running")), released=())
    assert check() == ["w2", "w1", "w3", "w4"]
    assert [a.workload_id for a in state.snapshot(T0).allocations] == ["w3", "w4"]
    state.put_project(ProjectChanged(event_id="e1", project_id="team-a", name="team-a",
                                     default_node_pools=["default"]))
    state.add_request(request("w5"))
    state.apply_status(status("w5"), released=())
    state.apply_status(status("w2", 2, Phase.COMPLETED, PodStatus("w2-0", phase="Succeeded")),
                       released=())
    assert check() == ["w1", "w3", "w4", "w5"]
    state.apply_status(status("w3", 2, Phase.COMPLETED, PodStatus("w3-0", phase="Succeeded")),
                       released=())
    assert check() == ["w1", "w4", "w5"]
    assert [a.workload_id for a in state.snapshot(T0).allocations] == ["w4"]


@pytest.mark.parametrize("seed", range(12))
def test_the_ledger_kept_between_cycles_is_the_one_the_allocations_give(seed):
    """Workloads arrive, are placed by real cycles, run, finish (some with pods still going),
    pods appear on nodes with no decision of ours, nodes come and go: after every event, the
    ledger the state keeps between cycles holds what `Ledger.of` builds from the snapshot,
    and a cycle decides the same with either."""
    rng = random.Random(seed)
    state = ClusterState()
    for n in range(4):
        state.put_node(core.Node(f"n{n}", "a100" if n % 2 else "t4", True, 4))
    sequence: dict[str, int] = {}
    pods_of: dict[str, list[PodStatus]] = {}
    compared = 0
    binding: list[core.Placement] = []
    evicting: list[core.Eviction] = []

    def report(wid: str, phase: Phase, pods: list[PodStatus]) -> None:
        sequence[wid] = sequence.get(wid, 0) + 1
        pods_of[wid] = pods
        status_ = WorkloadStatus(workload_id=wid, project="p", sequence=sequence[wid],
                                 phase=phase, pods=tuple(pods), time=T0)
        held = state.allocations.pods_of(wid)
        keep = status_.pods_holding()
        state.apply_status(status_, released=[p for p in held if p not in keep])

    for step in range(120):
        roll = rng.random()
        live = [w for w in pods_of if w in state.requests or state.allocations.pods_of(w)]
        if roll < 0.3 or not live:
            wid = f"w{step}"
            n = rng.randint(1, 3)
            state.add_request(WorkloadRequest(
                id=wid, project=rng.choice(["team-a", "team-b"]), priority_class="train",
                priority=rng.choice([50, 100]), preemptible=rng.random() < 0.7, node_pools=(),
                pods=n, min_pods=n, gpus_per_pod=rng.randint(0, 2), submitted_at=T0))
            if rng.random() < 0.9:  # its pods (a late first status also happens)
                report(wid, Phase.PENDING, [PodStatus(f"{wid}-{i}") for i in range(n)])
        elif roll < 0.55:  # bound pods start running
            wid = rng.choice(live)
            report(wid, Phase.RUNNING, [
                PodStatus(p.name, node=p.node, phase="Running") if p.node else p
                for p in pods_of[wid]])
        elif roll < 0.75:  # over: every pod done, or a leftover still running
            wid = rng.choice(live)
            leftover = rng.random() < 0.3
            report(wid, Phase.COMPLETED, [
                PodStatus(p.name, node=p.node, phase="Running" if leftover and i == 0
                          else "Succeeded") for i, p in enumerate(pods_of[wid])])
        elif roll < 0.79:  # a pod of ours appears bound where we did not place it (on a
            wid = rng.choice(live)  # node with room for it: the device plugin sees to that)
            pods = list(pods_of[wid])
            i = rng.randrange(len(pods))
            used = core.Ledger.of(state.snapshot(T0)).used
            room = [n for n, u in sorted(used.items()) if sum(1 for d in u if d == 0) >= 1]
            if pods[i].node is None and room:
                pods[i] = PodStatus(pods[i].name, node=rng.choice(room), phase="Running",
                                    gpus=1)
            report(wid, Phase.RUNNING, pods)
        elif roll < 0.83:  # a project's default pools change
            state.put_project(ProjectChanged(
                event_id=f"e{step}", project_id=rng.choice(["team-a", "team-b"]),
                name=rng.choice(["team-a", "team-b"]),
                default_node_pools=rng.choice([[], ["a100"], ["t4", "a100"]])))
        elif roll < 0.92:  # a node changes (its pool) or goes, or a new one comes
            n = rng.randrange(6)
            if rng.random() < 0.2:
                state.remove_node(f"n{n}")
            else:
                state.put_node(core.Node(f"n{n}", rng.choice(["a100", "t4"]), True, 4))
        # a cycle: allocations placed, then lifecycle's pod-group event binds the pods
        snapshot = state.snapshot(T0)
        assert snapshot == state.snapshot(T0, cached=False), f"step {step}"
        kept = state.kept_ledger(snapshot)
        if kept is not None:
            assert kept.holdings() == core.Ledger.of(snapshot).holdings(), f"step {step}"
            compared += 1
        rebuilt = core.decide(snapshot)
        result = core.decide(snapshot, kept)
        assert result == rebuilt, f"step {step}"
        state.add_evictions(result.evictions)
        evicting.extend(result.evictions)
        while evicting and rng.random() < 0.5:  # lifecycle evicts them: they wait again
            eviction = evicting.pop(0)
            gone = set(eviction.pods or [p.name for p in pods_of[eviction.workload_id]])
            report(eviction.workload_id, Phase.PENDING, [
                PodStatus(p.name) if p.name in gone else p
                for p in pods_of[eviction.workload_id]])
        for placement in result.placements:
            if placement.pipelined:  # waits for its victims' pods to go, as in the service
                continue
            state.add_placement(placement)
            binding.append(placement)
        # lifecycle binds the pods and says so, often only after the next cycle
        while binding and rng.random() < 0.5:
            placement = binding.pop(0)
            if placement.workload_id not in state.requests:
                continue
            where = {p.pod: p.node for p in placement.pods}
            report(placement.workload_id, Phase.INITIALIZING, [
                PodStatus(p.name, node=where.get(p.name, p.node), phase=p.phase)
                for p in pods_of[placement.workload_id]])
    assert compared > 15, "the kept ledger was used (not only the rebuilt one)"


def test_after_a_restart_the_evictions_under_way_give_back_their_nominations():
    state = ClusterState()
    state.put_node(core.Node("n1", "pool-a", True, 8))
    for wid in ("victim", "moved", "preemptor"):
        state.add_request(request(wid))
        state.apply_status(status(wid), released=())
    for wid in ("victim", "moved"):
        state.add_placement(core.Placement(wid, (core.PodPlacement(f"{wid}-0", "n1", (0, 1)),)))
    # As the tables give them back: the pods still held, the workload each was evicted for.
    state.add_evictions([core.Eviction("victim", "reclaim", "preemptor", "", ("victim-0",)),
                         core.Eviction("moved", "consolidate", "preemptor", "", ("moved-0",))])
    state.nominate_after_restart([
        core.Eviction("victim", "reclaim", "preemptor", "", ("victim-0",)),
        core.Eviction("moved", "consolidate", "preemptor", "", ("moved-0",))])

    assert state.nominated == (
        core.Nomination("preemptor", "pool-a", ("moved", "victim")),
        core.Nomination("moved", "pool-a", ("moved",)))
    assert state.snapshot().nominated == state.nominated


def test_a_gang_moved_in_part_keeps_its_other_pods_through_the_service_state():
    """Consolidation moves one pod of a two-node gang: the service evicts that pod only, the
    gang's other pod keeps its allocation, and once lifecycle reports the pod gone the next
    cycle places it again (its nomination) and the workload the room was made for."""
    state = ClusterState()
    for name in ("n1", "n2"):
        state.put_node(core.Node(name, "default", True, 4))
    for req in (replace(request("pinned"), preemptible=False), request("g", gpus=1, pods=2),
                request("big", gpus=4)):
        state.add_request(req)
    running = {"pinned": [("pinned-0", "n1", (0, 1))],
               "g": [("g-0", "n1", (2,)), ("g-1", "n2", (0,))]}
    for wid, pods in running.items():
        state.add_placement(core.Placement(wid, tuple(core.PodPlacement(p, n, d)
                                                      for p, n, d in pods)))
        state.apply_status(status(wid, 2, Phase.RUNNING, *(
            PodStatus(p, node=n, phase="Running") for p, n, _ in pods)), released=(), now=T0)
    state.apply_status(status("big"), released=())

    first = core.decide(replace(state.snapshot(), now=T0))
    [eviction] = first.evictions
    assert (eviction.workload_id, eviction.reason, eviction.by, eviction.pods) == (
        "g", "consolidate", "big", ("g-1",))
    assert "g-1 from n2 GPU 0 to n1 GPU 3" in eviction.message
    state.add_evictions(first.evictions)
    state.nominated = first.nominated
    # lifecycle evicts g-1 (and makes it again, unbound); g-0 runs on
    state.apply_status(status("g", 3, Phase.RUNNING, PodStatus("g-0", node="n1", phase="Running"),
                              PodStatus("g-1")), released=("g-1",), now=T0)
    snapshot = state.snapshot()
    assert [(a.pod, a.node) for a in snapshot.allocations if a.workload_id == "g"] == [
        ("g-0", "n1")]

    second = core.decide(replace(snapshot, now=T0))
    assert second.evictions == ()
    placed = {p.workload_id: [(x.pod, x.node, x.gpu_devices) for x in p.pods]
              for p in second.placements}
    assert placed == {"g": [("g-1", "n1", (3,))], "big": [("big-0", "n2", (0, 1, 2, 3))]}
