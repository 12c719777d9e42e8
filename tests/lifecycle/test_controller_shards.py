"""The controller with shards (against a real PostgreSQL and a Kubernetes stand-in): it drives
only the workloads of the shards it holds, takes a shard's unfinished workloads over from the
database when it gains the shard, and lets them go, unrecorded, when it loses it."""

import pytest

from fairway_contracts import EffectiveSpec, WorkloadType
from fairway_contracts.events import WorkloadSubmitted
from fairway_contracts.workloads import utcnow
from fairway_lifecycle import repository as repo
from tests.lifecycle.podfactory import pod
from tests.lifecycle.test_controller import FakeKube, phases, started, until

pytestmark = pytest.mark.infra


def submission(wid: str, project: str) -> WorkloadSubmitted:
    spec = EffectiveSpec.model_validate({"image": "busybox", "priorityClass": "train",
                                         "preemptible": True, "backoffLimit": 0})
    return WorkloadSubmitted(event_id=wid, workload_id=wid, name="bert", project=project,
                             project_id="7", workload_type=WorkloadType.TRAINING,
                             created_at=utcnow(), created_by="alice", spec=spec)


async def test_only_the_held_shards_workloads_are_driven_taken_over_and_let_go(
        database_url, tag):
    kube = FakeKube()
    runtime, service = await started(database_url, kube)
    controller = service.controller
    held = {"team-a"}
    controller.holds = lambda project: project in held
    try:
        mine, theirs = f"m{tag}", f"t{tag}"
        await service.submit(submission(mine, "team-a"), {})
        await service.submit(submission(theirs, "team-b"), {})
        mine_pod, theirs_pod = f"bert-{mine[:8]}-1-0", f"bert-{theirs[:8]}-1-0"
        await until(lambda: ("create", mine_pod) in kube.calls)
        assert theirs not in controller.tracked
        assert ("create", theirs_pod) not in kube.calls  # recorded, left to its holder
        async with runtime.pool.acquire() as conn:
            assert await repo.namespace_of(conn, theirs) == "fairway-team-b"

        # team-b's shard is taken over: its workload is loaded from the table and driven.
        held.add("team-b")
        await controller.adopt()
        assert theirs in controller.tracked
        await until(lambda: ("create", theirs_pod) in kube.calls)

        # team-a's shard is lost: its workload is let go, and its pods' events fold nothing.
        held.discard("team-a")
        assert controller.release() == [mine]
        assert mine not in controller.tracked
        before = await phases(runtime.pool, mine)
        controller.on_pod("ADDED", pod(mine_pod, workload=mine, stage="running",
                                       node="a100-1"))
        controller.on_pod("MODIFIED", pod(theirs_pod, workload=theirs, stage="running",
                                          node="a100-1"))
        async def theirs_running():
            async with runtime.pool.acquire() as conn:
                return (await conn.fetchval("SELECT phase FROM workloads WHERE workload_id"
                                            " = $1", theirs)) == "Running"
        await until(theirs_running)
        assert await phases(runtime.pool, mine) == before == ["Creating"]
    finally:
        await runtime.stop()
