"""Foreign usage: what pods another scheduler bound hold is taken from the node's free room,
and counted against no project (pure: the state, a snapshot, a cycle)."""

from datetime import UTC, datetime

from fairway_contracts.workloads import Phase
from fairway_scheduler import core
from fairway_scheduler.core import Ledger, Node, PendingCode, allocate
from fairway_scheduler.core.cluster import ClusterState, PodStatus, WorkloadRequest, WorkloadStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def state_with(nodes: dict[str, int], gpus: int = 2, pods: int = 1, cpu: int = 0
               ) -> ClusterState:
    state = ClusterState()
    for name, count in nodes.items():
        state.put_node(Node(name, "default", True, count, cpu_millis=8000, memory_mib=65536))
    state.add_request(WorkloadRequest(
        id="w1", project="team-a", priority_class="train", priority=50, preemptible=True,
        node_pools=(), pods=pods, min_pods=pods, gpus_per_pod=gpus, submitted_at=T0,
        cpu_millis=cpu))
    state.apply_status(WorkloadStatus(
        workload_id="w1", project="team-a", sequence=1, phase=Phase.PENDING,
        pods=tuple(PodStatus(f"w1-{i}") for i in range(pods))), released=())
    return state


def placed(state: ClusterState) -> list[tuple[str, str, tuple[int, ...]]]:
    result = allocate(state.snapshot())
    return [(p.pod, p.node, p.gpu_devices) for pl in result.placements for p in pl.pods]



def checked_kept_ledger(state: ClusterState) -> Ledger:
    """The service's kept ledger for the state's snapshot, checked to hold what a fresh one
    would."""
    snapshot = state.snapshot()
    ledger = state.kept_ledger(snapshot)
    assert ledger is not None
    assert ledger.holdings() == Ledger.of(snapshot).holdings()
    return ledger

def test_a_node_whose_gpus_another_scheduler_holds_is_skipped():
    state = state_with({"n1": 4, "n2": 4}, gpus=2)
    assert state.put_foreign("n1", 1, 3, 1000, 1024)
    assert placed(state) == [("w1-0", "n2", (0, 1))]


def test_foreign_gpus_take_the_lowest_devices_left_free():
    state = state_with({"n1": 4}, gpus=1)
    state.put_foreign("n1", 2, 2, 0, 0)
    assert placed(state) == [("w1-0", "n1", (2,))]


def test_no_room_elsewhere_waits_with_the_reason():
    state = state_with({"n1": 4}, gpus=2)
    state.put_foreign("n1", 1, 3, 0, 0)
    result = allocate(state.snapshot())
    assert not result.placements
    [reason] = result.pending
    assert reason.code == PendingCode.NO_FITTING_NODE


def test_foreign_cpu_and_pods_count_too():
    state = state_with({"n1": 0, "n2": 0}, gpus=0, cpu=100)
    state.put_foreign("n1", 3, 0, 8000, 0)  # every core held
    assert [node for _, node, _ in placed(state)] == ["n2"]
    state.put_foreign("n1", 110, 0, 0, 0)  # room, but the kubelet's pod limit reached
    assert [node for _, node, _ in placed(state)] == ["n2"]


def test_foreign_usage_counts_against_no_project():
    state = state_with({"n1": 4}, gpus=1)
    state.put_foreign("n1", 2, 3, 500, 512)
    ledger = Ledger.of(state.snapshot())
    assert ledger.queue_use == {}
    assert ledger.used["n1"] == [1000, 1000, 1000, 0]
    assert ledger.host["n1"] == [500, 512]
    assert ledger.pods["n1"] == 2


def test_a_change_moves_the_version_and_the_same_usage_does_not():
    state = state_with({"n1": 4})
    version = state.version
    assert state.put_foreign("n1", 1, 1, 0, 0)
    assert state.version == version + 1
    assert not state.put_foreign("n1", 1, 1, 0, 0)
    assert state.version == version + 1
    assert state.put_foreign("n1", 0, 0, 0, 0)  # the pods ended
    assert state.foreign == {}
    assert state.snapshot().allocations == ()


def test_a_removed_node_forgets_its_foreign_usage():
    state = state_with({"n1": 4})
    state.put_foreign("n1", 1, 1, 0, 0)
    state.remove_node("n1")
    assert state.foreign == {}


def test_a_kept_ledger_holds_foreign_pods_after_the_others_as_a_fresh_one_would():
    # their GPUs take the devices left free: held again after every known allocation (as
    # Ledger.of does) when they change or a workload on their node does; not a whole
    # ledger rebuilt each cycle
    state = state_with({"n1": 4, "n2": 4}, gpus=1, pods=3)

    def kept() -> Ledger:
        return checked_kept_ledger(state)

    state.add_placement(core.Placement("w1", (core.PodPlacement("w1-0", "n1", (3,)),)))
    state.put_foreign("n1", 1, 1, 0, 0)
    assert kept().used["n1"] == [1000, 0, 0, 1000]
    first = kept()
    # a placement on the device the foreign pod was counted on: it moves to the next free
    state.add_placement(core.Placement("w1", (core.PodPlacement("w1-1", "n1", (0,)),)))
    ledger = kept()
    assert ledger is first  # kept, not rebuilt
    assert ledger.used["n1"] == [1000, 1000, 0, 1000]
    # foreign usage elsewhere, more of it, then none
    state.put_foreign("n2", 2, 2, 500, 0)
    assert kept().used["n2"] == [1000, 1000, 0, 0]
    state.add_placement(core.Placement("w1", (core.PodPlacement("w1-2", "n2", (1,)),)))
    assert kept().used["n2"] == [1000, 1000, 1000, 0]
    state.put_foreign("n1", 0, 0, 0, 0)
    state.put_foreign("n2", 0, 0, 0, 0)
    ledger = kept()
    assert ledger is first
    assert ledger.used["n1"] == [1000, 0, 0, 1000] and ledger.used["n2"] == [0, 1000, 0, 0]


def test_a_kept_ledger_gives_foreign_usage_the_pool_a_fresh_one_would():
    state = ClusterState()
    for name, pool in (("n1", "a"), ("n2", "b"), ("n10", "c")):
        state.put_node(Node(name, pool, True, 4, cpu_millis=8000, memory_mib=65536))

    def kept() -> Ledger:
        return checked_kept_ledger(state)

    kept()
    for node, usage in (("n10", (1, 1)), ("n2", (1, 2)), ("n1", (2, 1)), ("n1", (0, 0)),
                        ("n10", (1, 0)), ("n2", (0, 0)), ("n10", (0, 0))):
        state.put_foreign(node, usage[0], usage[1], 0, 0)
        kept()
