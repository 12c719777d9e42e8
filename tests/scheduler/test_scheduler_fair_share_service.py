"""The fair-share scheduler service against real NATS JetStream and PostgreSQL: org units in
(projects and a department with quotas, a node pool by label), placements that follow fair
share, queue status and pending reasons published once per change, a restart that neither
forgets nor doubles allocations, and reclaim: preemption decisions published once (not again on
later cycles nor after a restart: the evicting pods are in the tables), the preemptor waiting
for the room rather than bound onto it, and bound once lifecycle reports the victims gone."""

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from fairway_bus import publish_model
from fairway_bus.bootstrap import consumer_config
from fairway_contracts import streams, subjects
from fairway_contracts.events import (
    BindDecision,
    DepartmentChanged,
    NodeInventory,
    NodePoolChanged,
    PodGroupChanged,
    PoolResources,
    PreemptDecision,
    ProjectChanged,
    QueueStatusChanged,
    Quota,
    SchedulingPending,
    WorkloadSubmitted,
)
from fairway_contracts.workloads import EffectiveSpec, Phase, PodSummary, WorkloadType
from fairway_scheduler.app import build
from fairway_scheduler.settings import SchedulerSettings
from fairway_scheduler.testing import SchedulerConsumers

from .conftest import clean_up, create_consumers, delete_consumers, org_consumers

pytestmark = pytest.mark.infra

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LABEL = "fairway.io/node-pool"
PER_PROJECT = 30  # one-GPU workloads each project submits: 60 asked, 24 GPUs there


@pytest.fixture
def names(tag: str) -> dict[str, str]:
    return {"a": f"p-{tag}-a", "b": f"p-{tag}-b", "dept": f"d-{tag}", "pool": f"pool-{tag}"}


@pytest.fixture
async def fs_consumers(js, tag: str, names):
    """Consumers of this test's own that take every workload subject (two projects), starting
    at the end of their streams so that only this test's messages reach them."""
    specs = SchedulerConsumers(
        inventory=replace(streams.SCHEDULER_INVENTORY, durable=f"test-fs-inventory-{tag}"),
        workloads=replace(streams.SCHEDULER_WORKLOADS, durable=f"test-fs-workloads-{tag}"),
        podgroups=replace(streams.SCHEDULER_PODGROUPS, durable=f"test-fs-podgroups-{tag}"),
        **org_consumers(tag),
    )
    everything = ("inventory", "workloads", "podgroups", "projects", "departments",
                  "node_pools")
    await create_consumers(js, specs, new_only=everything)
    yield specs
    await delete_consumers(js, specs)
    await clean_up(js, tag, names["a"], names["b"])


@pytest.fixture
async def start_scheduler(nats_url: str, database_url: str, fs_consumers):
    started = []

    async def start():
        # A long settle: the burst of submissions lands before the first cycle decides.
        settings = SchedulerSettings(nats_url=nats_url, database_url=database_url,
                                     cycle_seconds=3.0, settle_seconds=1.5,
                                     leader_election="off", verify_kept_state=True)
        service = build(settings, consumers=fs_consumers)
        await service.start(serve_http=False)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.ready:
            await service.stop()


@pytest.fixture
async def db(database_url: str):
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "scheduler"})
    yield conn
    await conn.close()


def cycles_run() -> float:
    return REGISTRY.get_sample_value("fairway_scheduler_cycle_seconds_count") or 0


def step_counts() -> dict[str, float]:
    """How many cycles each step was timed in (`fairway_scheduler_cycle_step_seconds`)."""
    return {step: REGISTRY.get_sample_value("fairway_scheduler_cycle_step_seconds_count",
                                            {"step": step}) or 0
            for step in ("snapshot", "ledger", "decide", "commit")}


async def publish_org(js, tag: str, names: dict[str, str]) -> None:
    pool = names["pool"]
    await publish_model(js, subjects.org_node_pool(pool),
                        NodePoolChanged(event_id=f"np-{tag}", name=pool, label_key=LABEL,
                                        label_value=pool),
                        msg_id=f"np-{tag}")
    await publish_model(js, subjects.org_department(f"dep-{tag}"),
                        DepartmentChanged(event_id=f"dep-{tag}", department_id=f"dep-{tag}",
                                          name=names["dept"],
                                          resources=[PoolResources(node_pool=pool,
                                                                   gpu=Quota(deserved=24))]),
                        msg_id=f"dep-{tag}")
    for key, weight in (("a", 2), ("b", 1)):
        await publish_model(js, subjects.org_project(f"id-{tag}-{key}"),
                            ProjectChanged(event_id=f"prj-{tag}-{key}",
                                           project_id=f"id-{tag}-{key}", name=names[key],
                                           department_id=f"dep-{tag}",
                                           resources=[PoolResources(
                                               node_pool=pool,
                                               gpu=Quota(deserved=0,
                                                         over_quota_weight=weight))]),
                            msg_id=f"prj-{tag}-{key}")


async def publish_nodes(js, tag: str, pool: str) -> None:
    for i in range(3):
        name = f"n-{tag}-{i}"
        # The inventory says "default": the pool's label decides.
        await publish_model(js, subjects.node_inventory(name),
                            NodeInventory(name=name, node_pool="default", ready=True, gpus=8,
                                          gpu_product="NVIDIA-A100-SXM4-80GB",
                                          gpu_memory_mib=81920, cpu_millis=64000,
                                          memory_mib=524288, labels={LABEL: pool},
                                          observed_at=T0),
                            msg_id=f"inv-{name}")


def submitted(wid: str, project: str, at: int) -> WorkloadSubmitted:
    return WorkloadSubmitted(
        event_id=f"sub-{wid}", workload_id=wid, name=f"job-{wid[:8]}", project=project,
        project_id=f"id-{project}", workload_type=WorkloadType.TRAINING,
        created_at=T0 + timedelta(seconds=at), created_by="alice",
        spec=EffectiveSpec(image="pytorch", priority_class="train", preemptible=True,
                           backoff_limit=6, compute={"gpu_devices_request": 1,
                                                     "cpu_core_request": 2,
                                                     "cpu_memory_request": "8Gi"}),
    )


def pod_group(wid: str, project: str, sequence: int, phase: Phase,
              node: str | None = None, pod_phase: str = "Pending") -> PodGroupChanged:
    return PodGroupChanged(
        event_id=f"pg-{wid}-{sequence}", workload_id=wid, name=f"job-{wid[:8]}",
        project=project, workload_type=WorkloadType.TRAINING, sequence=sequence, phase=phase,
        time=T0, pods=[PodSummary(name=f"job-{wid[:8]}-0", node=node, phase=pod_phase, gpus=1)])


async def messages(js, stored_messages, subject: str) -> list:
    return await stored_messages(streams.DECISIONS.name, subject)


async def drained(js, consumers: SchedulerConsumers, eventually, settle: float = 2.5) -> None:
    async def empty():
        for spec in consumers.all():
            info = await js.consumer_info(spec.stream, spec.durable)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await eventually(empty, timeout=20)
    await asyncio.sleep(settle)


async def test_two_projects_share_the_cluster_by_weight_and_say_so_once(
        js, tag, names, fs_consumers, db, start_scheduler, stored_messages, eventually):
    a, b, pool = names["a"], names["b"], names["pool"]
    await publish_org(js, tag, names)
    await publish_nodes(js, tag, pool)
    workloads = {a: [], b: []}
    for i in range(PER_PROJECT):
        for project in (a, b):
            wid = str(uuid.uuid4())
            workloads[project].append(wid)
            await publish_model(js, subjects.workload_submitted(project, wid),
                                submitted(wid, project, at=i), msg_id=f"sub-{wid}")
            await publish_model(js, subjects.podgroup(project, wid),
                                pod_group(wid, project, 1, Phase.PENDING), msg_id=f"pg-{wid}-1")

    service = await start_scheduler()

    async def binds():
        found = {}
        for project in (a, b):
            for m in await messages(js, stored_messages, f"fairway.scheduler.bind.{project}.>"):
                decision = BindDecision.model_validate_json(m.data)
                found[decision.workload_id] = decision
        return found if len(found) >= 24 else None

    decisions = await eventually(binds, timeout=30)
    await drained(js, fs_consumers, eventually)
    decisions = await binds()
    placed = {p: sum(1 for w in workloads[p] if w in decisions) for p in (a, b)}
    # Weights 2:1 over 24 GPUs (deserved 0 each, the department deserves all 24): 16 and 8.
    assert placed == {a: 16, b: 8}
    nodes_used = [pl.node for d in decisions.values() for pl in d.placements]
    assert set(nodes_used) == {f"n-{tag}-{i}" for i in range(3)}  # the pool came by label
    assert await db.fetchval("SELECT count(*) FROM allocations") == 24
    assert await db.fetchval("SELECT sum(cpu_millis) FROM allocations") == 24 * 2000
    assert await db.fetchval("SELECT max(memory_mib) FROM allocations") == 8192

    # Queue status: the last message per queue is its state.
    async def last_status(kind: str, name: str) -> QueueStatusChanged:
        found = await messages(js, stored_messages, subjects.queue_status(kind, name, pool))
        return QueueStatusChanged.model_validate_json(found[-1].data)

    status_a = await last_status("project", a)
    assert (status_a.org_id, status_a.parent, status_a.node_pool) == (f"id-{tag}-a",
                                                                       names["dept"], pool)
    assert (status_a.gpu.over_quota_weight, status_a.gpu.fair_share, status_a.gpu.allocated,
            status_a.gpu.requested, status_a.gpu.limit) == (2, 16, 16, PER_PROJECT, -1)
    assert status_a.cpu.allocated == 16 * 2000 and status_a.memory.allocated == 16 * 8192
    status_b = await last_status("project", b)
    assert (status_b.gpu.fair_share, status_b.gpu.allocated, status_b.gpu.requested) == (
        8, 8, PER_PROJECT)
    dept = await last_status("department", names["dept"])
    assert (dept.gpu.deserved, dept.gpu.fair_share, dept.gpu.allocated, dept.gpu.requested) == (
        24, 24, 24, 2 * PER_PROJECT)

    # Pending reasons: one event per waiting workload, with a code and the numbers.
    waiting = [w for p in (a, b) for w in workloads[p] if w not in decisions]
    assert len(waiting) == 2 * PER_PROJECT - 24
    project_of = {w: p for p in (a, b) for w in workloads[p]}
    first = SchedulingPending.model_validate_json((await messages(
        js, stored_messages, subjects.scheduling_pending(project_of[waiting[0]],
                                                         waiting[0])))[-1].data)
    assert first.pending and first.code == "OverFairShare" and first.since is not None
    assert "fair share" in first.message
    stored = await db.fetchval(
        "SELECT count(*) FROM workloads WHERE pending_code = 'OverFairShare'")
    assert stored == len(waiting)

    async def counts() -> tuple[int, int]:
        queue = await messages(js, stored_messages, subjects.QUEUE_STATUS_ALL)
        pending = await messages(js, stored_messages, subjects.PENDING_ALL)
        return (len([m for m in queue if tag in m.subject]),
                len([m for m in pending if tag in m.subject]))

    before = await counts()

    # A change that changes nothing: a waiting workload's pods seen again. A cycle runs and
    # publishes nothing new.
    w = waiting[0]
    cycles, steps = cycles_run(), step_counts()
    await publish_model(js, subjects.podgroup(project_of[w], w),
                        pod_group(w, project_of[w], 2, Phase.PENDING), msg_id=f"pg-{w}-2")
    await eventually(lambda: _true(cycles_run() > cycles))
    await drained(js, fs_consumers, eventually, settle=0.5)
    assert await counts() == before
    # every cycle that ran is timed step by step as well
    ran = cycles_run() - cycles
    assert {step: count - steps[step] for step, count in step_counts().items()} == dict.fromkeys(
        ("snapshot", "ledger", "decide", "commit"), ran)

    # Restart: the state comes back from the tables; another no-op change decides nothing,
    # publishes nothing, and the 24 allocations are neither forgotten nor doubled.
    assert await db.fetchval("SELECT count(*) FROM projects WHERE name = ANY($1)", [a, b]) == 2
    await service.stop()
    # ... and every org event is delivered again (same stream sequences): nothing changes.
    for spec in (fs_consumers.projects, fs_consumers.departments, fs_consumers.node_pools):
        await js.delete_consumer(spec.stream, spec.durable)
        await js.add_consumer(spec.stream, consumer_config(spec))
    service = await start_scheduler()
    cycles = cycles_run()
    await publish_model(js, subjects.podgroup(project_of[w], w),
                        pod_group(w, project_of[w], 3, Phase.PENDING), msg_id=f"pg-{w}-3")
    await eventually(lambda: _true(cycles_run() > cycles))
    await drained(js, fs_consumers, eventually, settle=0.5)
    assert await counts() == before
    assert len(await binds()) == 24
    assert await db.fetchval("SELECT count(*) FROM allocations") == 24

    # One of a's workloads completes: its GPU goes to a (15 of its fair share of 16), not to
    # b, and nowhere else: the restarted scheduler still knows the other 23 are held.
    done = next(w for w in workloads[a] if w in decisions)
    node = decisions[done].placements[0].node
    await publish_model(js, subjects.podgroup(a, done),
                        pod_group(done, a, 2, Phase.COMPLETED, node=node, pod_phase="Succeeded"),
                        msg_id=f"pg-{done}-2")

    async def one_more():
        found = await binds()
        return found if len(found) == 25 else None

    before_ids = set(decisions)
    decisions = await eventually(one_more, timeout=15)
    await drained(js, fs_consumers, eventually)
    assert len(await binds()) == 25
    [new] = set(decisions) - before_ids
    assert new in workloads[a]
    assert await db.fetchval("SELECT count(*) FROM allocations") == 24
    # The newly placed workload no longer waits: its reason is cleared, once.
    cleared = SchedulingPending.model_validate_json((await messages(
        js, stored_messages, subjects.scheduling_pending(a, new)))[-1].data)
    assert not cleared.pending and cleared.code is None

    # A waiting workload of b is deleted before it ever ran: it no longer waits either.
    gone = next(w for w in workloads[b] if w not in decisions)
    await publish_model(js, subjects.podgroup(b, gone),
                        pod_group(gone, b, 2, Phase.DELETED), msg_id=f"pg-{gone}-2")

    async def cleared_gone():
        last = await _last_pending(js, stored_messages, b, gone)
        return last if last is not None and not last.pending else None

    await eventually(cleared_gone, timeout=15)
    assert await db.fetchval("SELECT pending_code FROM workloads WHERE id = $1", gone) is None


async def _true(value: bool) -> bool:
    return value


async def _last_pending(js, stored_messages, project: str, wid: str) -> SchedulingPending | None:
    found = await messages(js, stored_messages, subjects.scheduling_pending(project, wid))
    return SchedulingPending.model_validate_json(found[-1].data) if found else None


async def test_a_workload_that_can_never_fit_is_announced_unschedulable_once(
        js, tag, names, fs_consumers, db, start_scheduler, stored_messages, eventually):
    """A pod larger than any node of the pool, and a workload whose only pool does not exist:
    each gets one `SchedulingPending` with `unschedulable` (not again on later cycles nor after
    a restart), and neither counts as requested in its project's queue status."""
    a, b, pool = names["a"], names["b"], names["pool"]
    await publish_org(js, tag, names)
    await publish_nodes(js, tag, pool)
    giant, lost, fits = (str(uuid.uuid4()) for _ in range(3))
    event = submitted(giant, a, at=0)
    compute = event.spec.compute.model_copy(update={"gpu_devices_request": 16})  # nodes have 8
    event = event.model_copy(update={"spec": event.spec.model_copy(update={"compute": compute})})
    await publish_model(js, subjects.workload_submitted(a, giant), event, msg_id=f"sub-{giant}")
    event = submitted(lost, b, at=1)
    event = event.model_copy(update={"spec": event.spec.model_copy(
        update={"node_pools": [f"nowhere-{tag}"]})})
    await publish_model(js, subjects.workload_submitted(b, lost), event, msg_id=f"sub-{lost}")
    await publish_model(js, subjects.workload_submitted(b, fits), submitted(fits, b, at=2),
                        msg_id=f"sub-{fits}")
    for wid, project in ((giant, a), (lost, b), (fits, b)):
        await publish_model(js, subjects.podgroup(project, wid),
                            pod_group(wid, project, 1, Phase.PENDING), msg_id=f"pg-{wid}-1")
    service = await start_scheduler()

    async def refused():
        found = {}
        for wid, project in ((giant, a), (lost, b)):
            last = await _last_pending(js, stored_messages, project, wid)
            if last is None:
                return None
            found[wid] = last
        return found

    found = await eventually(refused, timeout=30)
    await drained(js, fs_consumers, eventually)
    assert found[giant].unschedulable and found[giant].code == "NoSuchResource"
    assert found[giant].message == (
        "needs 16 GPUs and 2000 millicores and 8192 MiB of memory per pod; no node in node "
        f"pool {pool} has that much (the largest has 8 GPUs)")
    assert found[lost].unschedulable and found[lost].code == "NodePoolUnavailable"
    assert found[lost].message == f"node pool nowhere-{tag} does not exist"
    assert await db.fetchval("SELECT pending_unschedulable FROM workloads WHERE id = $1", giant)
    # The one that fits is placed, and says nothing unschedulable.
    assert all(not SchedulingPending.model_validate_json(m.data).unschedulable for m in
               await messages(js, stored_messages, subjects.scheduling_pending(b, fits)))

    async def last_status(name: str) -> QueueStatusChanged:
        found = await messages(js, stored_messages, subjects.queue_status("project", name, pool))
        return QueueStatusChanged.model_validate_json(found[-1].data)

    assert (await last_status(a)).gpu.requested == 0  # the 16 GPUs it can never get
    assert (await last_status(b)).gpu.requested == 1  # only the one that runs

    async def count() -> int:
        total = 0
        for wid, project in ((giant, a), (lost, b)):
            total += len(await messages(js, stored_messages,
                                        subjects.scheduling_pending(project, wid)))
        return total

    before = await count()
    assert before == 2
    # Later cycles, and a restart, announce nothing again.
    cycles = cycles_run()
    await publish_model(js, subjects.podgroup(a, giant), pod_group(giant, a, 2, Phase.PENDING),
                        msg_id=f"pg-{giant}-2")
    await eventually(lambda: _true(cycles_run() > cycles))
    await drained(js, fs_consumers, eventually, settle=0.5)
    await service.stop()
    await start_scheduler()
    cycles = cycles_run()
    await publish_model(js, subjects.podgroup(b, lost), pod_group(lost, b, 2, Phase.PENDING),
                        msg_id=f"pg-{lost}-2")
    await eventually(lambda: _true(cycles_run() > cycles))
    await drained(js, fs_consumers, eventually, settle=0.5)
    assert await count() == before


async def test_reclaim_is_decided_once_and_the_preemptor_runs_when_the_room_is_free(
        js, tag, names, fs_consumers, db, start_scheduler, stored_messages, eventually):
    a, b, pool = names["a"], names["b"], names["pool"]
    await publish_org(js, tag, names)  # both deserve 0 in a department of 24; weights 2:1
    await publish_nodes(js, tag, pool)  # 3 nodes x 8 GPUs
    borrowed = [str(uuid.uuid4()) for _ in range(24)]
    for i, wid in enumerate(borrowed):
        await publish_model(js, subjects.workload_submitted(b, wid), submitted(wid, b, at=i),
                            msg_id=f"sub-{wid}")
        await publish_model(js, subjects.podgroup(b, wid), pod_group(wid, b, 1, Phase.PENDING),
                            msg_id=f"pg-{wid}-1")
    service = await start_scheduler()

    async def binds(project: str) -> dict[str, BindDecision]:
        found = {}
        for m in await messages(js, stored_messages, f"fairway.scheduler.bind.{project}.>"):
            decision = BindDecision.model_validate_json(m.data)
            found[decision.workload_id] = decision
        return found

    async def all_bound():
        found = await binds(b)
        return found if len(found) == 24 else None

    bound = await eventually(all_bound, timeout=30)
    # They run (lifecycle would say so).
    for wid, decision in bound.items():
        await publish_model(js, subjects.podgroup(b, wid),
                            pod_group(wid, b, 2, Phase.RUNNING,
                                      node=decision.placements[0].node, pod_phase="Running"),
                            msg_id=f"pg-{wid}-2")
    await drained(js, fs_consumers, eventually)

    # Project a arrives: by weight 2:1 its fair share is 16 of the 24 GPUs.
    arriving = [str(uuid.uuid4()) for _ in range(16)]
    for i, wid in enumerate(arriving):
        await publish_model(js, subjects.workload_submitted(a, wid),
                            submitted(wid, a, at=100 + i), msg_id=f"sub-{wid}")
        await publish_model(js, subjects.podgroup(a, wid), pod_group(wid, a, 1, Phase.PENDING),
                            msg_id=f"pg-{wid}-1")

    async def preemptions() -> list[PreemptDecision]:
        return [PreemptDecision.model_validate_json(m.data) for m in await messages(
            js, stored_messages, f"fairway.scheduler.preempt.{b}.>")]

    async def sixteen():
        found = await preemptions()
        return found if len(found) >= 16 else None

    decided = await eventually(sixteen, timeout=30)
    await drained(js, fs_consumers, eventually)
    decided = await preemptions()
    assert len(decided) == 16 and {d.reason for d in decided} == {"reclaim"}
    assert {d.by for d in decided} == set(arriving)
    assert "fair share" in decided[0].message and decided[0].pods is None
    # The room is still held: nothing of a is bound yet, each waits for it, and says so.
    assert not await binds(a)
    last = SchedulingPending.model_validate_json((await messages(
        js, stored_messages, subjects.scheduling_pending(a, arriving[0])))[-1].data)
    assert last.code == "WaitingForPreemption", last
    assert await db.fetchval("SELECT count(*) FROM evictions") == 16

    # Each eviction names the workload it makes room for (its nomination after a restart).
    assert {r["by_workload"] for r in await db.fetch("SELECT by_workload FROM evictions")} == (
        set(arriving))
    # A restart: the evicting pods come back from the tables, and no decision is repeated.
    await service.stop()
    service = await start_scheduler()
    cycles = cycles_run()
    poke = arriving[0]
    await publish_model(js, subjects.podgroup(a, poke), pod_group(poke, a, 2, Phase.PENDING),
                        msg_id=f"pg-{poke}-2")
    await eventually(lambda: _true(cycles_run() > cycles))
    await drained(js, fs_consumers, eventually, settle=1.0)
    assert len(await preemptions()) == 16
    assert not await binds(a)

    # Lifecycle evicts: the victims are Pending again, their evicted pods Failed (as Kubernetes
    # shows an evicted pod). The room is free, and a's workloads are bound onto it; b keeps its
    # fair share of 8.
    victims = {d.workload_id for d in decided}
    for wid in victims:
        await publish_model(js, subjects.podgroup(b, wid),
                            pod_group(wid, b, 3, Phase.PENDING,
                                      node=bound[wid].placements[0].node, pod_phase="Failed"),
                            msg_id=f"pg-{wid}-3")

    async def a_bound():
        found = await binds(a)
        return found if len(found) == 16 else None

    await eventually(a_bound, timeout=30)
    await drained(js, fs_consumers, eventually)
    assert len(await binds(a)) == 16
    assert len(await preemptions()) == 16  # settled: nothing more is taken
    assert await db.fetchval("SELECT count(*) FROM evictions") == 0
    assert await db.fetchval("SELECT count(*) FROM allocations") == 24


async def test_fractions_count_against_quota_by_portion(
        js, tag, names, fs_consumers, start_scheduler, stored_messages, eventually):
    """A project limited to 1 GPU runs two 0.5 fractions (on one device), and the third waits
    with a reason that names the numbers."""
    a, pool = names["a"], names["pool"]
    await publish_org(js, tag, names)
    await publish_model(js, subjects.org_project(f"id-{tag}-a"),
                        ProjectChanged(event_id=f"prj-{tag}-a-limit", project_id=f"id-{tag}-a",
                                       name=a, department_id=f"dep-{tag}",
                                       resources=[PoolResources(
                                           node_pool=pool, gpu=Quota(deserved=1, limit=1))]),
                        msg_id=f"prj-{tag}-a-limit")
    await publish_nodes(js, tag, pool)
    wids = [str(uuid.uuid4()) for _ in range(3)]
    for i, wid in enumerate(wids):
        event = submitted(wid, a, at=i)
        compute = event.spec.compute.model_copy(
            update={"gpu_request_type": "portion", "gpu_portion_request": 0.5})
        event = event.model_copy(
            update={"spec": event.spec.model_copy(update={"compute": compute})})
        await publish_model(js, subjects.workload_submitted(a, wid), event, msg_id=f"sub-{wid}")
        await publish_model(js, subjects.podgroup(a, wid), pod_group(wid, a, 1, Phase.PENDING),
                            msg_id=f"pg-{wid}-1")

    await start_scheduler()

    async def two_binds():
        found = {}
        for m in await messages(js, stored_messages, f"fairway.scheduler.bind.{a}.>"):
            decision = BindDecision.model_validate_json(m.data)
            found[decision.workload_id] = decision
        return found if len(found) >= 2 else None

    decisions = await eventually(two_binds, timeout=30)
    assert set(decisions) == set(wids[:2])
    placed = [p for d in decisions.values() for p in d.placements]
    assert [p.portion for p in placed] == [0.5, 0.5]
    assert len({(p.node, tuple(p.gpu_devices)) for p in placed}) == 1  # packed on one device

    waiting = await eventually(lambda: _last_pending(js, stored_messages, a, wids[2]),
                               timeout=20)
    assert (waiting.pending, waiting.code) == (True, "OverLimit")
    assert waiting.message == (f"project {a} uses 1 GPU of its limit of 1 GPU in node pool"
                               f" {pool} and this workload needs 0.5 GPUs more")
    await drained(js, fs_consumers, eventually)
    assert len(await messages(js, stored_messages, f"fairway.scheduler.bind.{a}.>")) == 2
