"""A distributed workload's master sized apart from its workers: the scheduler places and
accounts the master pod at its own size (an MPI launcher asks for no GPU) and every other pod
at the workers' size, in every action and in what running pods hold."""

from datetime import UTC, datetime, timedelta

from fairway_contracts.events import PodGroupChanged, WorkloadSubmitted
from fairway_contracts.workloads import (
    Compute,
    EffectiveSpec,
    MasterSpec,
    Phase,
    PodRole,
    PodSummary,
    WorkloadType,
)
from fairway_scheduler.core import (
    Allocation,
    ClusterSnapshot,
    Ledger,
    Node,
    PendingCode,
    QueueSpec,
    Quota,
    Workload,
    decide,
)
from fairway_scheduler.core.cluster import ClusterState, WorkloadRequest, WorkloadStatus
from fairway_scheduler.core.framework.session import gang_need, pod_request, request_of
from fairway_scheduler.core.model import DisruptionSettings, PodSize

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LAUNCHER = PodSize(gpus_per_pod=0, cpu_millis=500, memory_mib=1024)


def mpi(wid: str = "mpi", *, project: str = "team-a", master: PodSize | None = LAUNCHER,
        gpus: int = 4, waiting: tuple[str, ...] | None = None, **kw) -> Workload:
    pods = (f"{wid}-master-0", f"{wid}-worker-0", f"{wid}-worker-1")
    return Workload(id=wid, project=project, priority=50, submitted_at=T0, gpus_per_pod=gpus,
                    min_pods=3, pods=3, cpu_millis=4000, memory_mib=8192,
                    waiting_pods=pods if waiting is None else waiting, master=master,
                    master_pod=pods[0], **kw)


def nodes(n: int = 2, gpus: int = 4) -> tuple[Node, ...]:
    return tuple(Node(f"node-{i}", "default", True, gpus, cpu_millis=16000, memory_mib=65536)
                 for i in range(1, n + 1))


def team(deserved: float = 8) -> tuple[QueueSpec, ...]:
    return (QueueSpec("team-a", "project", "default", gpu=Quota(deserved)),)


def placed(result, wid: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {p.pod: (p.node, p.gpu_devices) for pl in result.placements
            if pl.workload_id == wid for p in pl.pods}


def queue(result, name: str = "team-a"):
    return next(q for q in result.queues if q.name == name and q.kind == "project")


# requests --------------------------------------------------------------------------------------

def test_the_master_pod_asks_for_its_own_size_and_the_others_for_the_workers():
    workload = mpi()
    request = request_of(workload)
    assert pod_request(request, workload, "mpi-master-0").vector(0) == [0, 500, 1024]
    assert pod_request(request, workload, "mpi-worker-1").vector(0) == [4000, 4000, 8192]
    assert gang_need(request, workload, list(workload.waiting_pods), 0) == [8000, 8500, 17408]
    # without the master among them, only workers
    assert gang_need(request, workload, ["mpi-worker-0"], 0) == [4000, 4000, 8192]


# allocate --------------------------------------------------------------------------------------

def test_a_launcher_without_gpus_lets_the_job_fit_where_its_workers_gpus_alone_fit():
    result = decide(ClusterSnapshot(nodes=nodes(), workloads=(mpi(),), queues=team()))
    assert placed(result, "mpi") == {"mpi-master-0": ("node-1", ()),
                                     "mpi-worker-0": ("node-1", (0, 1, 2, 3)),
                                     "mpi-worker-1": ("node-2", (0, 1, 2, 3))}
    status = queue(result)
    assert (status.gpu.allocated, status.cpu.allocated, status.memory.allocated) == (
        8, 8500, 17408)
    assert not result.pending


def test_the_same_job_with_its_master_sized_like_its_workers_does_not_fit():
    result = decide(ClusterSnapshot(nodes=nodes(), workloads=(mpi(master=None),),
                                    queues=team()))
    assert not result.placements
    assert result.pending[0].code == PendingCode.GANG_UNSCHEDULABLE


def test_a_master_larger_than_a_worker_is_placed_where_its_own_size_fits():
    big = PodSize(gpus_per_pod=4, cpu_millis=1000, memory_mib=1024)
    cluster = (Node("big-1", "default", True, 4, cpu_millis=16000, memory_mib=65536),
               Node("small-1", "default", True, 1, cpu_millis=16000, memory_mib=65536),
               Node("small-2", "default", True, 1, cpu_millis=16000, memory_mib=65536))
    result = decide(ClusterSnapshot(nodes=cluster, workloads=(mpi(master=big, gpus=1),),
                                    queues=team(6)))
    assert placed(result, "mpi") == {"mpi-master-0": ("big-1", (0, 1, 2, 3)),
                                     "mpi-worker-0": ("small-1", (0,)),
                                     "mpi-worker-1": ("small-2", (0,))}
    assert queue(result).gpu.allocated == 6


def test_requested_counts_a_waiting_master_at_its_own_size():
    busy = Workload(id="busy", project="team-a", priority=50, submitted_at=T0, gpus_per_pod=4,
                    pods=2, min_pods=2, waiting_pods=("busy-0", "busy-1"))
    job = mpi()
    result = decide(ClusterSnapshot(nodes=nodes(), workloads=(busy, job), queues=team()))
    assert placed(result, "busy")
    assert queue(result).gpu.requested == 16  # 2 x 4 for busy, 2 x 4 for the job's workers
    assert queue(result).cpu.requested == 8500
    assert result.pending[0].message.startswith(
        "needs a master pod with no GPU and 500 millicores and 1024 MiB of memory and 2 pods "
        "with 4 GPUs and 4000 millicores and 8192 MiB of memory each placed together")


def test_a_master_too_large_for_any_node_is_refused_naming_the_master():
    huge = PodSize(gpus_per_pod=8)
    result = decide(ClusterSnapshot(nodes=nodes(), workloads=(mpi(master=huge),),
                                    queues=team()))
    reason = result.pending[0]
    assert reason.code == PendingCode.NO_SUCH_RESOURCE and reason.unschedulable
    assert "its master pod needs 8 GPUs" in reason.message


# what running pods hold ------------------------------------------------------------------------

def running(master: PodSize | None = LAUNCHER) -> tuple[Workload, tuple[Allocation, ...]]:
    job = mpi(waiting=(), master=master, started_at=T0)
    master_cpu, master_mem = (500, 1024) if master else (4000, 8192)
    return job, (Allocation("mpi", "mpi-master-0", "node-1", (), cpu_millis=master_cpu,
                            memory_mib=master_mem),
                 Allocation("mpi", "mpi-worker-0", "node-1", (0, 1, 2, 3), cpu_millis=4000,
                            memory_mib=8192),
                 Allocation("mpi", "mpi-worker-1", "node-2", (0, 1, 2, 3), cpu_millis=4000,
                            memory_mib=8192))


def test_a_reclaimed_job_frees_exactly_what_its_pods_held():
    job, held = running()
    other = Workload(id="b", project="team-b", priority=50, submitted_at=T0 + timedelta(1),
                     gpus_per_pod=4, pods=2, min_pods=2, waiting_pods=("b-0", "b-1"))
    queues = (QueueSpec("team-a", "project", "default", gpu=Quota(0)),
              QueueSpec("team-b", "project", "default", gpu=Quota(8)))
    snapshot = ClusterSnapshot(nodes=nodes(), workloads=(job, other), allocations=held,
                               queues=queues, now=T0 + timedelta(hours=1),
                               disruption=DisruptionSettings())
    ledger = Ledger.of(snapshot)
    assert ledger.queue_use[("team-a", "default")][:3] == [8000, 8500, 17408]
    result = decide(snapshot)
    assert [(e.workload_id, e.reason, e.by) for e in result.evictions] == [
        ("mpi", "reclaim", "b")]
    status = queue(result)
    assert (status.gpu.allocated, status.cpu.allocated, status.memory.allocated) == (0, 0, 0)
    assert queue(result, "team-b").gpu.allocated == 8


# the service's state ---------------------------------------------------------------------------

def submitted(master_compute: Compute | None) -> WorkloadSubmitted:
    spec = EffectiveSpec(image="mpi:1", priority_class="train", preemptible=True,
                         backoff_limit=0, pods=3, min_pods=3, distributed_framework="MPI",
                         num_workers=2,
                         compute=Compute(gpu_devices_request=4, cpu_core_request=4),
                         master_spec=MasterSpec(compute=master_compute))
    return WorkloadSubmitted(event_id="e1", workload_id="w1", name="mpi", project="team-a",
                             workload_type=WorkloadType.DISTRIBUTED, spec=spec,
                             project_id="p1", created_by="alice", created_at=T0)


def test_the_submitted_masters_compute_is_its_size():
    request = WorkloadRequest.from_event(submitted(Compute(cpu_core_request=0.5)), {})
    assert request.master == PodSize(gpus_per_pod=0, cpu_millis=500)
    assert WorkloadRequest.from_event(submitted(None), {}).master is None


def test_the_state_knows_the_master_pod_by_its_role_and_books_it_at_its_size():
    state = ClusterState()
    state.put_node(Node("node-1", "default", True, 4, cpu_millis=16000, memory_mib=65536))
    state.put_node(Node("node-2", "default", True, 4, cpu_millis=16000, memory_mib=65536))
    state.add_request(WorkloadRequest.from_event(submitted(Compute(cpu_core_request=0.5)), {}))
    pods = [PodSummary(name="mpi-master-0-w1", role=PodRole.MASTER),
            PodSummary(name="mpi-worker-0-w1", role=PodRole.WORKER),
            PodSummary(name="mpi-worker-1-w1", role=PodRole.WORKER)]
    event = PodGroupChanged(event_id="p1", workload_id="w1", name="mpi", project="team-a",
                            workload_type=WorkloadType.DISTRIBUTED, sequence=1,
                            phase=Phase.PENDING, pods=pods, time=T0)
    state.apply_status(WorkloadStatus.from_event(event, {}), released=())
    snapshot = state.snapshot(T0)
    (workload,) = snapshot.workloads
    assert workload.master_pod == "mpi-master-0-w1" and workload.master.cpu_millis == 500
    result = decide(snapshot)
    assert {p.pod for pl in result.placements for p in pl.pods} == {p.name for p in pods}
    for placement in result.placements:
        state.add_placement(placement)
    master = state.allocations[("w1", "mpi-master-0-w1")]
    worker = state.allocations[("w1", "mpi-worker-0-w1")]
    assert (master.gpu_devices, master.cpu_millis) == ((), 500)
    assert (len(worker.gpu_devices), worker.cpu_millis) == (4, 4000)


# the views count the master at its own size too -------------------------------------------------

def test_the_effective_spec_requests_the_masters_gpus_and_the_workers():
    launcher = submitted(Compute(cpu_core_request=0.5)).spec
    assert launcher.gpus_requested() == 8  # 0 + 2 x 4
    assert submitted(None).spec.gpus_requested() == 12  # 3 x 4, the master a worker


def test_a_master_that_finds_no_room_is_named_as_the_pod_that_does_not_fit():
    # two 4-GPU nodes could hold the workers; the master asks for more CPU than any node has
    big_cpu = PodSize(gpus_per_pod=0, cpu_millis=16001)
    result = decide(ClusterSnapshot(nodes=nodes(), workloads=(mpi(master=big_cpu),),
                                    queues=team()))
    reason = result.pending[0]
    assert reason.unschedulable and "its master pod needs no GPU and 16001 millicores" in (
        reason.message)
    # and one that could fit on an empty node but not now: its own sentence says so
    room_taken = PodSize(gpus_per_pod=0, cpu_millis=12000)
    filler = Workload(id="filler", project="team-a", priority=50, submitted_at=T0,
                      gpus_per_pod=0, cpu_millis=8000, waiting_pods=())
    held = tuple(Allocation("filler", f"filler-{i}", f"node-{i}", (), cpu_millis=8000)
                 for i in (1, 2))
    result = decide(ClusterSnapshot(nodes=nodes(), workloads=(filler, mpi(master=room_taken)),
                                    allocations=held, queues=team()))
    [reason] = [r for r in result.pending if r.workload_id == "mpi"]
    assert reason.code == PendingCode.GANG_UNSCHEDULABLE
    assert "; its master pod does not fit in node pool default now" in reason.message
