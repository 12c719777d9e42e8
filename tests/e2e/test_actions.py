"""Stop, resume and delete through the API, carried out by lifecycle against kubesim (issue 6)."""

import asyncio
import json
import time

import nats
import pytest

from fairway_contracts import subjects
from tests.e2e.test_walking_skeleton import submit

pytestmark = pytest.mark.e2e


def act(api, workload: dict, action: str) -> None:
    """`suspend`, `resume` or `delete`, as a user asks for it."""
    path = f"/api/v1/workloads/trainings/{workload['workloadId']}"
    response = api.delete(path) if action == "delete" else api.post(f"{path}/{action}")
    assert response.status_code == 202, response.text


async def last_pod_group(nats_url: str, workload: dict, phase: str) -> dict:
    """The workload's newest pod group once it says `phase` (the phase event may reach its
    stream a moment before the pod group reaches its own: another stream), or the newest."""
    nc = await nats.connect(nats_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            msg = await nc.jetstream().get_last_msg(
                "FAIRWAY_PODGROUPS", subjects.podgroup(workload["projectName"],
                                                       workload["workloadId"]))
            group = json.loads(msg.data)
            if group["phase"] == phase or time.monotonic() > deadline:
                return group
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def test_stop_resume_and_delete_end_where_they_should(api, default_project_id, phases,
                                                            stack):
    workload = submit(api, default_project_id, "stoppable", {})  # runs until stopped
    await phases.read(workload["workloadId"], until={"Running"})

    act(api, workload, "suspend")
    events = await phases.read(workload["workloadId"], until={"Stopped"})
    assert [e["phase"] for e in events][-2:] == ["Stopping", "Stopped"]
    group = await last_pod_group(stack.nats_url, workload, "Stopped")
    assert group["pods"] == [], "a stopped workload holds no pods, so no GPUs"

    act(api, workload, "resume")
    events = await phases.read(workload["workloadId"], until={"Running"}, skip=len(events))
    assert [e["phase"] for e in events] == ["Resuming", "Pending", "Initializing", "Running"]

    act(api, workload, "delete")
    events = await phases.read(workload["workloadId"], until={"Deleted"}, skip=10)
    assert [e["phase"] for e in events] == ["Deleting", "Deleted"]
    group = await last_pod_group(stack.nats_url, workload, "Deleted")
    assert group["pods"] == [] and group["phase"] == "Deleted"
