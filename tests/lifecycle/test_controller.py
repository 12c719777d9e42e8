"""The lifecycle service's requests and its controller (the state machine's I/O shell) against
a real PostgreSQL and a Kubernetes stand-in: the intents carried out and the phases recorded,
without the e2e stack."""

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_contracts.events import (
    BindDecision,
    PodPlacement,
    PreemptDecision,
    WorkloadAction,
    WorkloadSubmitted,
)
from fairway_contracts.workloads import utcnow
from fairway_lifecycle import repository as repo
from fairway_lifecycle.service import LifecycleService, Submission
from fairway_lifecycle.settings import LifecycleSettings
from fairway_lifecycle.testing import build_for_tests
from fairway_store import create_pool, migrate_dsn, outbox_columns
from tests.lifecycle.podfactory import pod

MIGRATIONS = Path(repo.__file__).parent / "migrations"
pytestmark = pytest.mark.infra


class FakeKube:
    """Answers every call as done and keeps the calls, in order."""

    def __init__(self):
        self.calls: list[tuple] = []

    async def ensure_namespace(self, name):
        self.calls.append(("namespace", name))

    async def create_pod(self, manifest):
        self.calls.append(("create", manifest["metadata"]["name"]))
        return True

    async def delete_pod(self, namespace, name, grace_seconds=None):
        self.calls.append(("delete", name, grace_seconds))

    async def evict(self, namespace, name, grace_seconds=None):
        self.calls.append(("evict", name, grace_seconds))
        return "evicted"

    def close(self):
        pass


async def started(database_url, kube, **settings):
    """(runtime, service): the service with its runtime's pool and no broker, on migrated
    tables, its controller started without watches (fed by hand) and ready."""
    runtime, service = build_for_tests(
        LifecycleSettings(database_url=database_url, **settings), kube=kube)
    await migrate_dsn(database_url, "lifecycle", MIGRATIONS)
    runtime.pool = await create_pool(database_url, "lifecycle")
    await service.controller.start(watch=False)
    service.controller.on_pods_synced()
    await until(lambda: service.ready)
    return runtime, service


@pytest.fixture
async def service(database_url):
    """The service with its runtime's pool and no broker, the controller fed by hand."""
    runtime, service = await started(database_url, FakeKube(), eviction_grace_seconds=7)
    yield service
    await runtime.stop()


async def submit(service: LifecycleService, wid: str, kind=WorkloadType.TRAINING,
                 **extra) -> None:
    spec = EffectiveSpec.model_validate({"image": "busybox", "priorityClass": "train",
                                         "preemptible": True, "backoffLimit": 0,
                                         "compute": {"gpuDevicesRequest": 1}, **extra})
    await service.submit(WorkloadSubmitted(
        event_id=wid, workload_id=wid, name="bert", project="team-a", project_id="7",
        workload_type=kind, created_at=utcnow(), created_by="alice", spec=spec), {})


async def submitted_and_created(service: LifecycleService, wid: str) -> str:
    """A training submitted and its pod made: the pod's name."""
    await submit(service, wid)
    name = f"bert-{wid[:8]}-1-0"

    async def created():
        return ("create", name) in service.controller.kube.calls
    await until(created)
    return name


async def until(condition, timeout: float = 5.0):
    async def poll():
        while not (await result if asyncio.iscoroutine(result := condition()) else result):
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


async def phases(pool, wid: str) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT payload FROM outbox WHERE subject LIKE $1 ORDER BY id",
                                f"fairway.phase.team-a.{wid}.%")
    return [json.loads(bytes(r["payload"]))["phase"] for r in rows]


async def test_a_training_gets_its_pods_and_its_phases_recorded(service, tag):
    pool, controller = service.runtime.pool, service.controller
    wid = f"{tag}-w1"
    name = await submitted_and_created(service, wid)
    assert controller.kube.calls[:2] == [("namespace", "fairway-team-a"), ("create", name)]
    for stage in ("unbound", "pulling", "running", "succeeded"):
        controller.on_pod("MODIFIED" if stage != "unbound" else "ADDED",
                          pod(name, workload=wid, stage=stage, node="a100-1"))

    async def completed():
        return (await phases(pool, wid))[-1:] == ["Completed"]
    await until(completed)
    assert await phases(pool, wid) == ["Creating", "Pending", "Initializing", "Running",
                                       "Completed"]
    async with pool.acquire() as conn:
        row = await repo.get(conn, wid)
    assert (row.phase, row.sequence) == (Phase.COMPLETED, 5)

    async def untracked():
        return wid not in controller.tracked and wid not in controller.machine.workloads
    await until(untracked)


async def test_preemption_evicts_the_pods_and_a_stop_deletes_them(service, tag):
    pool, controller = service.runtime.pool, service.controller
    wid = f"{tag}-w2"
    await submit(service, wid, WorkloadType.WORKSPACE)
    name = f"bert-{wid[:8]}-1-0"
    for stage in ("unbound", "running"):
        controller.on_pod("MODIFIED", pod(name, workload=wid, stage=stage, node="a100-1"))

    async def running():
        return (await phases(pool, wid))[-1:] == ["Running"]
    await until(running)

    await controller.preempt(PreemptDecision(
        event_id=f"{wid}-p", decision_id=f"{wid}-p", workload_id=wid, project="team-a",
        reason="reclaim", message="team-b needs it back", decided_at=utcnow()))
    assert ("evict", name, 7) in controller.kube.calls

    async def preempted():
        return (await phases(pool, wid))[-1:] == ["Pending"]
    await until(preempted)

    # placed again, then stopped by its user: the pod goes, gracefully
    again = pod(name, workload=wid, stage="running", node="a100-2", uid="again")
    controller.on_pod("ADDED", again)
    await service.act(WorkloadAction(event_id=f"{wid}-s", workload_id=wid, project="team-a",
                                     action="stop",
                                     requested_by="alice", requested_at=utcnow()))

    async def deleted():
        return ("delete", name, None) in controller.kube.calls
    await until(deleted)
    controller.on_pod("DELETED", again)

    async def stopped():
        return (await phases(pool, wid))[-1:] == ["Stopped"]
    await until(stopped)
    assert await phases(pool, wid) == ["Creating", "Pending", "Running", "Pending", "Running",
                                       "Stopping", "Stopped"]
    async with pool.acquire() as conn:
        assert (await repo.get(conn, wid)).desired == "Stopped"


async def _failed_by_preemption(service: LifecycleService, wid: str) -> dict:
    """A terminate-after-preemption training, running, preempted: Failed (Evicted) while its
    evicted pod still terminates. The pod as the watch last reported it."""
    pool, controller = service.runtime.pool, service.controller
    await submit(service, wid, terminateAfterPreemption=True)
    name = f"bert-{wid[:8]}-1-0"
    for stage in ("unbound", "running"):
        controller.on_pod("MODIFIED", pod(name, workload=wid, stage=stage, node="a100-1"))

    async def running():
        return (await phases(pool, wid))[-1:] == ["Running"]
    await until(running)
    await controller.preempt(PreemptDecision(
        event_id=f"{wid}-p", decision_id=f"{wid}-p", workload_id=wid, project="team-a",
        reason="reclaim", message="team-b needs it back", decided_at=utcnow()))
    assert ("evict", name, 7) in controller.kube.calls
    evicted = pod(name, workload=wid, stage="running", node="a100-1")
    evicted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"  # its grace running
    controller.on_pod("MODIFIED", evicted)

    async def failed():
        return (await phases(pool, wid))[-1:] == ["Failed"]
    await until(failed)
    return evicted


async def delete(service: LifecycleService, wid: str) -> None:
    await service.act(WorkloadAction(event_id=f"{wid}-d", workload_id=wid, project="team-a",
                                     action="delete", requested_by="admin",
                                     requested_at=utcnow()))


async def test_a_workload_failed_by_preemption_is_deleted_while_its_pod_terminates(
        service, tag):
    # Failed, but still driven while its evicted pod terminates: the delete must reach the
    # machine of the workload already tracked, not only the database.
    pool, controller = service.runtime.pool, service.controller
    wid = f"{tag}-w3"
    evicted = await _failed_by_preemption(service, wid)
    await delete(service, wid)

    async def deleting():
        return (await phases(pool, wid))[-1:] == ["Deleting"]
    await until(deleting)
    controller.on_pod("DELETED", evicted)

    async def deleted():
        return (await phases(pool, wid))[-1:] == ["Deleted"]
    await until(deleted)
    assert await phases(pool, wid) == ["Creating", "Pending", "Running", "Failed", "Deleting",
                                       "Deleted"]
    # the pod was already going: it is not deleted again
    assert not [c for c in controller.kube.calls if c[0] == "delete"]

    async def untracked():
        return wid not in controller.tracked and wid not in controller.machine.workloads
    await until(untracked)


async def test_a_workload_failed_by_preemption_is_deleted_once_its_pod_is_gone(service, tag):
    pool, controller = service.runtime.pool, service.controller
    wid = f"{tag}-w4"
    evicted = await _failed_by_preemption(service, wid)
    controller.on_pod("DELETED", evicted)

    async def untracked():
        return wid not in controller.tracked and wid not in controller.machine.workloads
    await until(untracked)
    await delete(service, wid)

    async def deleted():
        return (await phases(pool, wid))[-1:] == ["Deleted"]
    await until(deleted)
    assert await phases(pool, wid) == ["Creating", "Pending", "Running", "Failed", "Deleted"]
    await until(untracked)


def _submitted(wid: str) -> WorkloadSubmitted:
    spec = EffectiveSpec.model_validate({"image": "busybox", "priorityClass": "train",
                                         "preemptible": True, "backoffLimit": 0})
    return WorkloadSubmitted(event_id=wid, workload_id=wid, name="bert", project="team-a",
                             project_id="7", workload_type=WorkloadType.TRAINING,
                             created_at=utcnow(), created_by="alice", spec=spec)


async def test_a_fetch_of_submissions_is_recorded_once_each_and_all_driven(service, tag):
    """One transaction for a fetch: a submission redelivered (known already, or twice in the
    fetch) gives no second row nor a second Creating event, and every one is driven."""
    pool, controller = service.runtime.pool, service.controller
    old, new = f"{tag}-old", f"{tag}-new"
    await service.submit(_submitted(old), {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16
                                            + "-01"})
    await service.submit_many([Submission(_submitted(new), {}), Submission(_submitted(old), {}),
                               Submission(_submitted(new), {})])
    assert await phases(pool, old) == ["Creating"]
    assert await phases(pool, new) == ["Creating"]
    async with pool.acquire() as conn:
        rows = {wid: await repo.get(conn, wid) for wid in (old, new)}
    assert rows[old].trace_headers["traceparent"].startswith("00-111")
    assert rows[new].namespace == "fairway-team-a" and rows[new].sequence == 1
    assert rows[new].message == "creating 1 pod(s) in namespace fairway-team-a"
    assert old in controller.tracked and new in controller.tracked
    # what is driven is what the database holds
    assert controller.tracked[new].row.spec == rows[new].spec


async def test_a_failed_fetch_of_submissions_leaves_nothing(service, tag, monkeypatch):
    """The statement fails on the events (the batch handler raises; each message is then
    handled alone): none of the workloads was recorded, and none is driven."""
    pool, controller = service.runtime.pool, service.controller
    wids = [f"{tag}-a", f"{tag}-b"]

    def no_subjects(items):
        subjects_, *rest = outbox_columns(items)
        return [None] * len(subjects_), *rest  # outbox.subject is NOT NULL
    monkeypatch.setattr(repo, "outbox_columns", no_subjects)
    with pytest.raises(asyncpg.NotNullViolationError):
        await service.submit_many([Submission(_submitted(w), {}) for w in wids])
    async with pool.acquire() as conn:
        assert await repo.get_many(conn, wids) == []
    assert not any(w in controller.tracked for w in wids)
    monkeypatch.undo()
    await service.submit_many([Submission(_submitted(w), {}) for w in wids])
    assert [await phases(pool, w) for w in wids] == [["Creating"], ["Creating"]]


async def test_a_bind_uses_the_driven_workloads_namespace(service, tag):
    pool, kube = service.runtime.pool, service.controller.kube
    wid = f"{tag}-bind"
    await submit(service, wid)
    bound = []

    async def bind(namespace, pod, node):
        bound.append((namespace, pod, node))
        return "bound"
    kube.bind = bind
    decision = BindDecision(decision_id="d1", workload_id=wid, project="team-a",
                            placements=[PodPlacement(pod="p-0", node="a100-1")],
                            decided_at=utcnow())
    await service.bind(decision)
    service.controller._untrack(wid)  # not driven any more: from the database
    await service.bind(decision)
    assert bound == [("fairway-team-a", "p-0", "a100-1")] * 2
    with pytest.raises(LookupError):
        await service.bind(decision.model_copy(update={"workload_id": f"{tag}-unknown"}))
    async with pool.acquire() as conn:
        assert await repo.namespace_of(conn, wid) == "fairway-team-a"


async def test_changes_are_recorded_in_one_statement_unless_the_row_moved(
        service, tag, monkeypatch):
    """Recording plans from the row as this process last wrote it and writes it in one
    statement; a row another writer changed meanwhile is recorded under its lock instead,
    planned from what it holds: each transition still published once, in order."""
    pool, controller = service.runtime.pool, service.controller
    locked: list[list[str]] = []
    lock_for_record = repo.lock_for_record

    async def spy(conn, workload_ids):
        locked.append(list(workload_ids))
        return await lock_for_record(conn, workload_ids)
    monkeypatch.setattr(repo, "lock_for_record", spy)
    wid = f"{tag}-quick"
    await submit(service, wid)
    name = f"bert-{wid[:8]}-1-0"
    await until(lambda: ("create", name) in controller.kube.calls)
    controller.on_pod("ADDED", pod(name, workload=wid, stage="unbound"))
    controller.on_pod("MODIFIED", pod(name, workload=wid, stage="pulling", node="a100-1"))

    async def initializing():
        return (await phases(pool, wid))[-1:] == ["Initializing"]
    await until(initializing)
    assert locked == []
    # Another writer moved the row (as a second instance's recording would): the next
    # recording finds it changed and plans again under the lock, from the row.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE workloads SET podgroup_sequence = podgroup_sequence + 5"
                           " WHERE workload_id = $1", wid)
    controller.on_pod("MODIFIED", pod(name, workload=wid, stage="running", node="a100-1"))

    async def running():
        return (await phases(pool, wid))[-1:] == ["Running"]
    await until(running)
    assert locked == [[wid]]
    controller.on_pod("MODIFIED", pod(name, workload=wid, stage="succeeded", node="a100-1"))

    async def completed():
        return (await phases(pool, wid))[-1:] == ["Completed"]
    await until(completed)
    assert await phases(pool, wid) == ["Creating", "Pending", "Initializing", "Running",
                                       "Completed"]
    async with pool.acquire() as conn:
        row = await repo.get(conn, wid)
        groups = await conn.fetch("SELECT msg_id FROM outbox WHERE subject = $1 ORDER BY id",
                                  f"fairway.podgroup.team-a.{wid}")
    assert (row.phase, row.sequence) == (Phase.COMPLETED, 5)
    # the pod group's sequence went on from the row's (1, moved to 6), not from memory's
    assert [g["msg_id"].rsplit(":", 1)[1] for g in groups] == ["1", "7"]
    assert locked == [[wid]], "recorded in one statement again once memory caught up"


async def test_a_pod_its_node_refused_is_made_again_after_a_pause_and_spends_no_retry(
        service, tag):
    """backoffLimit 0: a refusal counted as a failure would fail the training at once."""
    pool, controller = service.runtime.pool, service.controller
    controller.retry_base_seconds = 0.3
    wid = f"{tag}-w9"
    name = await submitted_and_created(service, wid)
    controller.on_pod("ADDED", pod(name, workload=wid, stage="unbound"))
    controller.on_pod("MODIFIED", pod(name, workload=wid, stage="pulling", node="fr-1"))

    async def bound():
        return (await phases(pool, wid))[-1:] == ["Initializing"]
    await until(bound)
    refused = pod(name, workload=wid, stage="refused", node="fr-1")
    controller.on_pod("MODIFIED", refused)
    controller.on_pod("MODIFIED", refused)  # the same refusal seen again: one pause

    async def deleted():
        return ("delete", name, 0) in controller.kube.calls
    await asyncio.sleep(0.1)
    assert not await deleted()  # not at once: a node that keeps refusing is no hot loop
    await until(deleted, timeout=3)
    assert controller.kube.calls.count(("delete", name, 0)) == 1
    controller.on_pod("DELETED", refused)

    async def made_again():
        return controller.kube.calls.count(("create", name)) == 2
    await until(made_again)
    recorded = await phases(pool, wid)
    assert "Failed" not in recorded, recorded
    async with pool.acquire() as conn:
        row = await repo.get(conn, wid)
        reasons = [json.loads(bytes(r["payload"])).get("reason") for r in await conn.fetch(
            "SELECT payload FROM outbox WHERE subject LIKE $1 ORDER BY id",
            f"fairway.phase.team-a.{wid}.%")]
    assert "NodeRejected" in reasons, reasons
    assert recorded.count("Creating") == 1, recorded  # made again while Pending
    assert row.attempt == 1
