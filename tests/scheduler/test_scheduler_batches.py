"""The scheduler's batch handlers against real PostgreSQL: a fetch of submissions or pod-group
events, stored with a few set-based statements, ends as the same messages applied one after
the other would; and a fetch that fails leaves nothing behind (the bus then retries each
message alone)."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest
from opentelemetry import trace

from fairway_bus import Delivery, Received, publish_model
from fairway_contracts import subjects
from fairway_contracts.events import NodeInventory, PodGroupChanged, WorkloadSubmitted
from fairway_contracts.workloads import EffectiveSpec, Phase, PodSummary, WorkloadType
from fairway_scheduler import repository
from fairway_scheduler.settings import SchedulerSettings
from fairway_scheduler.testing import build_for_tests

pytestmark = pytest.mark.infra

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def received[M](payload: M, msg_id: str) -> Received[M]:
    return Received(payload, Delivery(msg_id=msg_id, subject="test", delivered=1, headers={},
                                      stream_sequence=0), trace.INVALID_SPAN)


def submitted(wid: str, project: str, pool: str, pods: int = 1) -> WorkloadSubmitted:
    return WorkloadSubmitted(
        event_id=f"sub-{wid}", workload_id=wid, name=f"job-{wid[:6]}", project=project,
        project_id=f"id-{project}", workload_type=WorkloadType.DISTRIBUTED, created_at=T0,
        created_by="alice",
        spec=EffectiveSpec(image="pytorch", priority_class="train", preemptible=True,
                           backoff_limit=6, node_pools=[pool], pods=pods, min_pods=pods,
                           compute={"gpu_devices_request": 1}),
    )


def pod_group(wid: str, project: str, sequence: int, phase: Phase,
              pods: list[PodSummary]) -> PodGroupChanged:
    return PodGroupChanged(
        event_id=f"pg-{wid}-{sequence}", workload_id=wid, name=f"job-{wid[:6]}",
        project=project, workload_type=WorkloadType.DISTRIBUTED, sequence=sequence,
        phase=phase, time=T0, pods=pods)


@pytest.fixture
async def scheduler(nats_url: str, database_url: str, consumers):
    settings = SchedulerSettings(nats_url=nats_url, database_url=database_url,
                                 cycle_seconds=0.1, leader_election="off",
                                 verify_kept_state=True)
    runtime, service = build_for_tests(settings, consumers)
    await runtime.start(serve_http=False)
    yield service
    if runtime.ready:
        await runtime.stop()


@pytest.fixture
async def db(database_url: str):
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "scheduler"})
    yield conn
    await conn.close()


async def test_a_fetch_of_submissions_stores_each_workload_once(scheduler, project, pool, db):
    first, ended = str(uuid.uuid4()), str(uuid.uuid4())
    # The last phase event of `ended` came first, and ended it.
    await scheduler.pod_groups_changed(
        [received(pod_group(ended, project, 1, Phase.COMPLETED, []), f"pg-{ended}-1")])
    fetch = [received(submitted(first, project, pool), f"sub-{first}"),
             received(submitted(first, project, pool), f"sub-{first}"),  # twice in the fetch
             received(submitted(first, project, pool, pods=3), f"again-{first}"),  # resent
             received(submitted(ended, project, pool), f"sub-{ended}")]
    await scheduler.workloads_submitted(fetch)

    assert set(scheduler.state.requests) == {first}
    assert scheduler.state.requests[first].pods == 1  # the first message wins
    rows = await db.fetch("SELECT id, pods FROM workloads WHERE id = ANY($1::text[])",
                          [first, ended])
    assert {row["id"]: row["pods"] for row in rows} == {first: 1, ended: 1}
    inbox = await db.fetch("SELECT msg_id FROM inbox WHERE msg_id LIKE '%sub-%'"
                           " OR msg_id LIKE 'again-%'")
    assert {row["msg_id"] for row in inbox} >= {f"sub-{first}", f"again-{first}",
                                                f"sub-{ended}"}

    version = scheduler.state.version
    await scheduler.workloads_submitted(fetch)  # redelivered: nothing changes
    assert scheduler.state.version == version


async def test_a_scaled_third_party_request_takes_its_new_pods_and_minimum(
        scheduler, project, pool, db):
    wid = str(uuid.uuid4())

    def revised(revision: int, pods: int, min_pods: int, seconds: int = 0) -> WorkloadSubmitted:
        event = submitted(wid, project, pool, pods=pods)
        return event.model_copy(update={
            "third_party": True, "revision": revision, "event_id": f"sub-{wid}-{revision}",
            "created_at": T0.replace(second=seconds),
            "spec": event.spec.model_copy(update={"min_pods": min_pods})})

    await scheduler.workloads_submitted([received(revised(0, 4, 4), f"sub-{wid}-0")])
    assert (scheduler.state.requests[wid].pods, scheduler.state.requests[wid].min_pods) == (4, 4)

    # scaled twice in one fetch, the older revision last: the higher one counts; its place
    # in the queue (when it was first submitted) stays
    await scheduler.workloads_submitted([received(revised(2, 6, 6, 9), f"sub-{wid}-2"),
                                         received(revised(1, 2, 2, 5), f"sub-{wid}-1")])
    request = scheduler.state.requests[wid]
    assert (request.pods, request.min_pods, request.revision) == (6, 6, 2)
    assert request.submitted_at == T0
    # an older revision later changes nothing, in memory or stored
    await scheduler.workloads_submitted([received(revised(1, 2, 2, 5), f"late-{wid}-1")])
    assert scheduler.state.requests[wid].pods == 6
    row = await db.fetchrow("SELECT pods, min_pods, revision, submitted_at FROM workloads"
                            " WHERE id = $1", wid)
    assert tuple(row) == (6, 6, 2, T0)
    # and a restart reads what was stored
    [loaded] = [r for r in await repository.load_requests(db) if r.id == wid]
    assert (loaded.pods, loaded.min_pods, loaded.revision) == (6, 6, 2)

    # its pod groups count tenths of a second since 2026: past 32 bits from 2032 on
    late = 2**31 + 10
    await scheduler.pod_groups_changed([received(pod_group(wid, project, late, Phase.PENDING, [
        PodSummary(name=f"web-{i}") for i in range(6)]), f"pg-{wid}-late")])
    assert scheduler.state.statuses[wid].sequence == late
    assert await db.fetchval("SELECT sequence FROM workload_status WHERE workload_id = $1",
                             wid) == late


async def test_a_fetch_of_pod_groups_ends_as_one_event_after_the_other(
        js, scheduler, project, pool, tag, db, eventually, monkeypatch):
    node = f"n-{tag}-1"
    await publish_model(js, subjects.node_inventory(node), NodeInventory(
        name=node, node_pool=pool, ready=True, gpus=4, gpu_product="NVIDIA-A100-SXM4-80GB",
        observed_at=T0), msg_id=f"inv-{tag}-1")
    await eventually(lambda: _true(node in scheduler.state.nodes))
    wid = str(uuid.uuid4())
    a, b = f"job-{wid[:6]}-0", f"job-{wid[:6]}-1"
    await scheduler.workloads_submitted([received(submitted(wid, project, pool, pods=2),
                                                  f"sub-{wid}")])
    await scheduler.pod_groups_changed([received(pod_group(
        wid, project, 1, Phase.PENDING, [PodSummary(name=a), PodSummary(name=b)]), "pg-1")])

    async def allocated() -> set[str]:
        rows = await db.fetch("SELECT pod FROM allocations WHERE workload_id = $1", wid)
        return {row["pod"] for row in rows}

    await eventually(lambda: _eq(allocated(), {a, b}))

    def running(sequence: int, a_phase: str) -> PodGroupChanged:
        return pod_group(wid, project, sequence, Phase.RUNNING, [
            PodSummary(name=a, node=node, phase=a_phase, gpus=1),
            PodSummary(name=b, node=node, phase="Running", gpus=1)])

    await scheduler.pod_groups_changed([
        received(running(2, "Running"), "pg-2"),
        received(running(2, "Running"), "pg-2"),  # the same message twice in the fetch
        received(pod_group(wid, project, 1, Phase.PENDING, []), "pg-1-late"),  # stale
        received(running(3, "Succeeded"), "pg-3"),  # releases a
        # a listed as holding again: one after the other, a stays released by pg-3
        received(running(4, "Running"), "pg-4"),
    ])
    assert await allocated() == {b}
    assert scheduler.state.allocations.pods_of(wid) == {b}
    assert scheduler.state.statuses[wid].sequence == 4
    assert await db.fetchval("SELECT sequence FROM workload_status WHERE workload_id = $1",
                             wid) == 4

    # A fetch that fails leaves nothing behind: neither its inbox rows nor its changes. Here
    # its second event breaks a constraint, after the first was recorded and applied.
    store = repository.store_pod_groups

    async def breaking(conn, consumer, events):
        ((_, status),) = events
        broken = replace(status, workload_id=str(uuid.uuid4()), project=None)
        return await store(conn, consumer, [*events, ("pg-broken", broken)])

    monkeypatch.setattr(repository, "store_pod_groups", breaking)
    finished = pod_group(wid, project, 5, Phase.COMPLETED, [])
    with pytest.raises(asyncpg.NotNullViolationError):
        await scheduler.pod_groups_changed([received(finished, "pg-5")])
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE msg_id = 'pg-5'") == 0
    assert await allocated() == {b}
    assert scheduler.state.statuses[wid].sequence == 4

    monkeypatch.undo()  # the bus hands the message over again, alone
    await scheduler.pod_groups_changed([received(finished, "pg-5")])
    assert await allocated() == set()
    assert wid not in scheduler.state.statuses
    assert not scheduler.state.allocations.pods_of(wid)


async def _true(value: bool) -> bool:
    return value


async def _eq(value, expected) -> bool:
    return await value == expected
