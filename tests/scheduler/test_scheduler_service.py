"""The scheduler service against real NATS JetStream and PostgreSQL: events in, bind decisions
out, exactly once, across duplicates, redeliveries and a restart."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from fairway_bus import publish_model
from fairway_contracts import streams, subjects
from fairway_contracts.events import (
    BindDecision,
    NodeInventory,
    PodGroupChanged,
    SchedulingPending,
    WorkloadSubmitted,
)
from fairway_contracts.workloads import (
    Compute,
    EffectiveSpec,
    MasterSpec,
    Phase,
    PodRole,
    PodSummary,
    WorkloadType,
)
from fairway_scheduler.core.model import PodSize
from fairway_scheduler.settings import SchedulerSettings
from fairway_scheduler.testing import build_for_tests

pytestmark = pytest.mark.infra

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def inventory(name: str, pool: str, gpus: int, ready: bool = True) -> NodeInventory:
    return NodeInventory(name=name, node_pool=pool, ready=ready, gpus=gpus,
                         gpu_product="NVIDIA-A100-SXM4-80GB", observed_at=T0)


def submitted(wid: str, project: str, pool: str, gpus: int, at: int = 0) -> WorkloadSubmitted:
    return WorkloadSubmitted(
        event_id=f"sub-{wid}", workload_id=wid, name=f"job-{wid[:6]}", project=project,
        project_id=f"id-{project}", workload_type=WorkloadType.TRAINING,
        created_at=T0 + timedelta(seconds=at), created_by="alice",
        spec=EffectiveSpec(image="pytorch", priority_class="train", preemptible=True,
                           backoff_limit=6, node_pools=[pool],
                           compute={"gpu_devices_request": gpus}),
    )


def phase_changed(wid: str, project: str, sequence: int, phase: Phase,
                  pods: list[PodSummary]) -> PodGroupChanged:
    return PodGroupChanged(
        event_id=f"ph-{wid}-{sequence}", workload_id=wid, name=f"job-{wid[:6]}",
        project=project, workload_type=WorkloadType.TRAINING, sequence=sequence,
        phase=phase, time=T0, pods=pods,
    )


@pytest.fixture
async def start_scheduler(nats_url: str, database_url: str, consumers):
    started = []

    async def start():
        # The only instance: no Lease, whatever KUBECONFIG the shell has.
        settings = SchedulerSettings(nats_url=nats_url, database_url=database_url,
                                     cycle_seconds=0.1, leader_election="off",
                                     verify_kept_state=True)
        runtime, scheduler = build_for_tests(settings, consumers)
        await runtime.start(serve_http=False)
        started.append(runtime)
        return scheduler

    yield start
    for runtime in started:
        if runtime.ready:
            await runtime.stop()


@pytest.fixture
async def db(database_url: str):
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "scheduler"})
    yield conn
    await conn.close()


def bind_decisions_total() -> float:
    return REGISTRY.get_sample_value("fairway_scheduler_decisions_total", {"kind": "bind"}) or 0


async def test_one_bind_decision_and_repeats_change_nothing(
        js, consumers, project, pool, tag, db, start_scheduler, stored_messages, eventually,
        replay_consumers):
    wid = str(uuid.uuid4())
    pod = f"job-{wid[:6]}-0"
    decided_before = bind_decisions_total()
    await publish_model(js, subjects.node_inventory(f"n-{tag}-1"),
                        inventory(f"n-{tag}-1", pool, gpus=4), msg_id=f"inv-{tag}-1")
    await publish_model(js, subjects.node_inventory(f"n-{tag}-0"),
                        inventory(f"n-{tag}-0", pool, gpus=8, ready=False), msg_id=f"inv-{tag}-0")
    await publish_model(js, subjects.workload_submitted(project, wid),
                        submitted(wid, project, pool, gpus=2), msg_id=f"sub-{wid}",
                        headers={"traceparent": TRACEPARENT})
    pending = phase_changed(wid, project, 1, Phase.PENDING, [PodSummary(name=pod, gpus=2)])
    await publish_model(js, subjects.podgroup(project, wid), pending,
                        msg_id=f"ph-{wid}-1")

    service = await start_scheduler()

    bind_subject = subjects.bind(project, wid)
    [message] = await eventually(lambda: stored_messages(streams.DECISIONS.name, bind_subject))
    decision = BindDecision.model_validate_json(message.data)
    # The NotReady node (which sorts first) is skipped; devices are the lowest free ones.
    assert [(p.pod, p.node, p.gpu_devices) for p in decision.placements] == [
        (pod, f"n-{tag}-1", [0, 1])]
    assert (decision.workload_id, decision.project) == (wid, project)
    assert message.headers["traceparent"].split("-")[1] == TRACE_ID  # the submission's trace
    assert bind_decisions_total() == decided_before + 1
    # Committed, then taken in memory: the next cycle sees the pod held.
    async def held() -> bool:
        return service.state.allocations.pods_of(wid) == {pod}

    assert await eventually(held)

    # The same phase event again under another id, and a later one in which the pod still has
    # no node (lifecycle has not bound it yet): the pod has its allocation, nothing is decided.
    await publish_model(js, subjects.podgroup(project, wid), pending,
                        msg_id=f"ph-{wid}-1-again")
    await publish_model(js, subjects.podgroup(project, wid),
                        phase_changed(wid, project, 2, Phase.PENDING,
                                      [PodSummary(name=pod, gpus=2)]),
                        msg_id=f"ph-{wid}-2")
    await eventually(lambda: db.fetchval(
        "SELECT sequence = 2 FROM workload_status WHERE workload_id = $1", wid))
    await drained(js, consumers, eventually)
    assert len(await stored_messages(streams.DECISIONS.name, bind_subject)) == 1

    # Restart, and have every message delivered again with its original id.
    await service.runtime.stop()
    await replay_consumers(consumers)
    await start_scheduler()
    await drained(js, consumers, eventually)

    assert len(await stored_messages(streams.DECISIONS.name, bind_subject)) == 1
    assert await db.fetchval("SELECT count(*) FROM allocations") == 1
    # One bind, and the project's queue status once: nothing changed after the first cycle
    # (the stream holds every message; the outbox forgets a row once it is published).
    assert len(await stored_messages(
        streams.DECISIONS.name, subjects.queue_status("project", project, pool))) == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    assert bind_decisions_total() == decided_before + 1


async def test_phase_before_submission_and_release_lets_the_next_one_in(
        js, consumers, project, pool, tag, db, start_scheduler, stored_messages, eventually):
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    node = f"n-{tag}-1"
    await publish_model(js, subjects.node_inventory(node), inventory(node, pool, gpus=1),
                        msg_id=f"inv-{tag}-1")
    # The phase event of the first workload comes before its submission.
    await publish_model(js, subjects.podgroup(project, first),
                        phase_changed(first, project, 1, Phase.PENDING,
                                      [PodSummary(name="first-0")]),
                        msg_id=f"ph-{first}-1")
    service = await start_scheduler()
    await publish_model(js, subjects.workload_submitted(project, first),
                        submitted(first, project, pool, gpus=1, at=0), msg_id=f"sub-{first}")
    await eventually(lambda: stored_messages(streams.DECISIONS.name,
                                             subjects.bind(project, first)))

    # The second one waits for the only GPU, and says why.
    await publish_model(js, subjects.workload_submitted(project, second),
                        submitted(second, project, pool, gpus=1, at=5), msg_id=f"sub-{second}")
    await publish_model(js, subjects.podgroup(project, second),
                        phase_changed(second, project, 1, Phase.PENDING,
                                      [PodSummary(name="second-0")]),
                        msg_id=f"ph-{second}-1")
    reason = await eventually(lambda: db.fetchrow(
        "SELECT pending_code, pending_message FROM workloads"
        " WHERE id = $1 AND pending_code IS NOT NULL", second))
    assert dict(reason) == {
        "pending_code": "OverFairShare",
        "pending_message": f"project {project} would use 2 GPUs in node pool {pool}, over its "
                           "fair share of 1 GPU, and no node there has room (0 GPUs free, the "
                           "largest free slot 0 GPUs)",
    }

    # The first one runs and completes: its GPU goes to the second.
    await publish_model(js, subjects.podgroup(project, first),
                        phase_changed(first, project, 2, Phase.RUNNING,
                                      [PodSummary(name="first-0", node=node, phase="Running")]),
                        msg_id=f"ph-{first}-2")
    await publish_model(js, subjects.podgroup(project, first),
                        phase_changed(first, project, 3, Phase.COMPLETED,
                                      [PodSummary(name="first-0", node=node,
                                                  phase="Succeeded")]),
                        msg_id=f"ph-{first}-3")
    [message] = await eventually(lambda: stored_messages(streams.DECISIONS.name,
                                                         subjects.bind(project, second)))
    decision = BindDecision.model_validate_json(message.data)
    assert [(p.pod, p.node, p.gpu_devices) for p in decision.placements] == [
        ("second-0", node, [0])]
    await eventually(lambda: db.fetchval(
        "SELECT pending_code IS NULL FROM workloads WHERE id = $1", second))
    # Its reason was published, then cleared.
    published = await eventually(lambda: _at_least(2, stored_messages(
        streams.DECISIONS.name, subjects.scheduling_pending(project, second))))
    waiting, cleared = (SchedulingPending.model_validate_json(m.data) for m in published)
    assert (waiting.pending, waiting.code) == (True, "OverFairShare")
    assert (cleared.pending, cleared.code, cleared.message) == (False, None, None)
    assert await db.fetchval("SELECT array_agg(pod) FROM allocations") == ["second-0"]

    # A stale event from before the completion, arriving late, brings nothing back.
    await publish_model(js, subjects.podgroup(project, first),
                        phase_changed(first, project, 1, Phase.PENDING,
                                      [PodSummary(name="first-0")]),
                        msg_id=f"ph-{first}-1-late")
    await drained(js, consumers, eventually)
    assert len(await stored_messages(streams.DECISIONS.name,
                                     subjects.bind(project, first))) == 1
    assert await db.fetchval("SELECT array_agg(pod) FROM allocations") == ["second-0"]
    assert tuple(await db.fetchrow(
        "SELECT sequence, phase, finished FROM workload_status WHERE workload_id = $1", first,
    )) == (3, "Completed", True)

    # A restart loads the same state: nothing is decided again.
    await service.runtime.stop()
    await start_scheduler()
    await drained(js, consumers, eventually)
    for wid in (first, second):
        assert len(await stored_messages(streams.DECISIONS.name, subjects.bind(project, wid))) == 1


async def _at_least(n: int, read):
    messages = await read
    return messages if len(messages) >= n else None


async def drained(js, consumers, eventually) -> None:
    """Wait until every test consumer has handled all it holds, then for a few cycles more."""

    async def empty():
        for spec in consumers.all():
            info = await js.consumer_info(spec.stream, spec.durable)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await eventually(empty)
    await asyncio.sleep(0.5)


def fraction(wid: str, project: str, pool: str, **compute) -> WorkloadSubmitted:
    event = submitted(wid, project, pool, gpus=1)
    spec = event.spec.model_copy(
        update={"compute": event.spec.compute.model_copy(update=compute)})
    return event.model_copy(update={"spec": spec})


async def test_fractions_are_placed_on_one_device_with_portion_memory_and_limit(
        js, consumers, project, pool, tag, start_scheduler, stored_messages, eventually):
    """A 40Gi memory fraction (limit 60Gi) on an 80Gi A100 is half of a device that may grow to
    three quarters; a 0.5 portion after it packs onto the same, partly used device."""
    node = f"n-{tag}-f"
    await publish_model(js, subjects.node_inventory(node),
                        inventory(node, pool, gpus=4).model_copy(
                            update={"gpu_memory_mib": 81920}),
                        msg_id=f"inv-{tag}-f")
    by_memory, by_portion = str(uuid.uuid4()), str(uuid.uuid4())
    await start_scheduler()

    await publish_model(js, subjects.workload_submitted(project, by_memory),
                        fraction(by_memory, project, pool, gpu_request_type="memory",
                                 gpu_memory_request="40Gi", gpu_memory_limit="60Gi"),
                        msg_id=f"sub-{by_memory}")
    await publish_model(js, subjects.podgroup(project, by_memory),
                        phase_changed(by_memory, project, 1, Phase.PENDING,
                                      [PodSummary(name=f"job-{by_memory[:6]}-0")]),
                        msg_id=f"ph-{by_memory}-1")
    [message] = await eventually(
        lambda: stored_messages(streams.DECISIONS.name, subjects.bind(project, by_memory)))
    [placed] = BindDecision.model_validate_json(message.data).placements
    assert (placed.node, placed.gpu_devices, placed.portion, placed.gpu_memory_mib,
            placed.gpu_limit) == (node, [0], 0.5, 40960, 0.75)

    await publish_model(js, subjects.workload_submitted(project, by_portion),
                        fraction(by_portion, project, pool, gpu_request_type="portion",
                                 gpu_portion_request=0.5),
                        msg_id=f"sub-{by_portion}")
    await publish_model(js, subjects.podgroup(project, by_portion),
                        phase_changed(by_portion, project, 1, Phase.PENDING,
                                      [PodSummary(name=f"job-{by_portion[:6]}-0")]),
                        msg_id=f"ph-{by_portion}-1")
    [message] = await eventually(
        lambda: stored_messages(streams.DECISIONS.name, subjects.bind(project, by_portion)))
    [placed] = BindDecision.model_validate_json(message.data).placements
    # Device 0 has half free: the fraction goes there, not onto an empty device.
    assert (placed.node, placed.gpu_devices, placed.portion, placed.gpu_memory_mib,
            placed.gpu_limit) == (node, [0], 0.5, None, None)


async def test_a_distributed_master_is_bound_and_kept_at_its_own_size_across_a_restart(
        js, consumers, project, pool, tag, db, start_scheduler, stored_messages, eventually):
    """An MPI launcher of no GPU and half a core with two 4-GPU workers, on two 4-GPU nodes:
    booked at a worker's size it would not fit; at its own it is bound with no device, and a
    restart loads its size and its pod's role back from the tables."""
    wid = str(uuid.uuid4())
    for i in (0, 1):
        await publish_model(js, subjects.node_inventory(f"n-{tag}-m{i}"),
                            inventory(f"n-{tag}-m{i}", pool, gpus=4), msg_id=f"inv-{tag}-m{i}")
    event = submitted(wid, project, pool, gpus=4)
    spec = event.spec.model_copy(update={
        "pods": 3, "min_pods": 3, "distributed_framework": "MPI", "num_workers": 2,
        "master_spec": MasterSpec(compute=Compute(cpu_core_request=0.5))})
    event = event.model_copy(update={"spec": spec, "workload_type": WorkloadType.DISTRIBUTED})
    await publish_model(js, subjects.workload_submitted(project, wid), event,
                        msg_id=f"sub-{wid}")
    pods = [PodSummary(name=f"mpi-master-0-{tag}", role=PodRole.MASTER),
            PodSummary(name=f"mpi-worker-0-{tag}", role=PodRole.WORKER, gpus=4),
            PodSummary(name=f"mpi-worker-1-{tag}", role=PodRole.WORKER, gpus=4)]
    await publish_model(js, subjects.podgroup(project, wid),
                        phase_changed(wid, project, 1, Phase.PENDING, pods),
                        msg_id=f"ph-{wid}-1")

    service = await start_scheduler()
    [message] = await eventually(lambda: stored_messages(streams.DECISIONS.name,
                                                         subjects.bind(project, wid)))
    placed = {p.pod: len(p.gpu_devices)
              for p in BindDecision.model_validate_json(message.data).placements}
    assert placed == {pods[0].name: 0, pods[1].name: 4, pods[2].name: 4}
    assert await eventually(lambda: db.fetchval(
        "SELECT cpu_millis FROM allocations WHERE workload_id = $1 AND pod = $2",
        wid, pods[0].name)) == 500

    await service.runtime.stop()
    service = await start_scheduler()
    await drained(js, consumers, eventually)
    assert service.state.requests[wid].master == PodSize(gpus_per_pod=0, cpu_millis=500)
    assert service.state.statuses[wid].master_pod() == pods[0].name
    (workload,) = [w for w in service.state.snapshot().workloads if w.id == wid]
    assert workload.master_pod == pods[0].name
    assert len(await stored_messages(streams.DECISIONS.name, subjects.bind(project, wid))) == 1
