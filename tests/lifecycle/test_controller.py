"""The controller, the state machine's I/O shell, against a real PostgreSQL and a Kubernetes
stand-in: the intents it carries out and the phases it records, without the e2e stack."""

import asyncio
import json
from pathlib import Path

import pytest

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_contracts.events import PreemptDecision, WorkloadSubmitted
from fairway_contracts.workloads import utcnow
from fairway_lifecycle import repository as repo
from fairway_lifecycle.controller import Controller
from fairway_store import create_pool, migrate_dsn
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


class FakeRuntime:
    def __init__(self, pool):
        self.pool, self.relay, self.tasks = pool, None, []

    def background(self, coro, name):
        self.tasks.append(asyncio.create_task(coro, name=name))


@pytest.fixture
async def pool(database_url):
    await migrate_dsn(database_url, "lifecycle", MIGRATIONS)
    p = await create_pool(database_url, "lifecycle")
    yield p
    await p.close()


@pytest.fixture
async def controller(pool):
    runtime = FakeRuntime(pool)
    c = Controller(runtime, FakeKube(), resync_seconds=300, eviction_grace_seconds=7)
    await c.start(watch=False)
    c.on_pods_synced()
    yield c
    for task in runtime.tasks:
        task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)


async def submit(pool, controller, wid: str, kind=WorkloadType.TRAINING) -> None:
    spec = EffectiveSpec.model_validate({"image": "busybox", "priorityClass": "train",
                                         "preemptible": True, "backoffLimit": 0,
                                         "compute": {"gpuDevicesRequest": 1}})
    event = WorkloadSubmitted(event_id=wid, workload_id=wid, name="bert", project="team-a",
                              project_id="7", workload_type=kind, created_at=utcnow(),
                              created_by="alice", spec=spec)
    async with pool.acquire() as conn:
        await repo.insert_workload(conn, event, "fairway-team-a", {}, "CreatingPods", "")
        row = await repo.get(conn, wid)
    await asyncio.wait_for(_loaded(controller), 5)
    controller.track(row)


async def _loaded(controller):
    while not controller.synced:
        await asyncio.sleep(0.01)


async def until(condition, timeout: float = 5.0):
    async def poll():
        while not await condition():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


async def phases(pool, wid: str) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT payload FROM outbox WHERE subject LIKE $1 ORDER BY id",
                                f"fairway.phase.team-a.{wid}.%")
    return [json.loads(bytes(r["payload"]))["phase"] for r in rows]


async def test_a_training_gets_its_pods_and_its_phases_recorded(pool, controller, tag):
    wid = f"{tag}-w1"
    await submit(pool, controller, wid)
    name = f"bert-{wid[:8]}-1-0"

    async def created():
        return ("create", name) in controller.kube.calls
    await until(created)
    assert controller.kube.calls[:2] == [("namespace", "fairway-team-a"), ("create", name)]
    for stage in ("unbound", "pulling", "running", "succeeded"):
        controller.on_pod("MODIFIED" if stage != "unbound" else "ADDED",
                          pod(name, workload=wid, stage=stage, node="a100-1"))

    async def completed():
        return (await phases(pool, wid))[-1:] == ["Completed"]
    await until(completed)
    assert await phases(pool, wid) == ["Pending", "Initializing", "Running", "Completed"]
    async with pool.acquire() as conn:
        row = await repo.get(conn, wid)
    assert (row.phase, row.sequence) == (Phase.COMPLETED, 5)

    async def untracked():
        return wid not in controller.tracked and wid not in controller.machine.workloads
    await until(untracked)


async def test_stop_deletes_the_pods_and_preemption_evicts_them(pool, controller, tag):
    wid = f"{tag}-w2"
    await submit(pool, controller, wid, WorkloadType.WORKSPACE)
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

    controller.desire(wid, "Stopped", False)
    controller.on_pod("DELETED", pod(name, workload=wid, stage="evicted", node="a100-1"))

    async def stopped():
        return (await phases(pool, wid))[-1:] == ["Stopped"]
    await until(stopped)
    assert await phases(pool, wid) == ["Pending", "Running", "Pending", "Stopping", "Stopped"]
