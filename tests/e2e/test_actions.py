"""Stop, resume and delete, carried out by lifecycle against kubesim (issue 6)."""

import json
import uuid

import nats
import pytest

from fairway_bus import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import WorkloadAction
from tests.e2e.test_walking_skeleton import submit

pytestmark = pytest.mark.e2e


async def act(nats_url: str, workload: dict, action: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        event = WorkloadAction(event_id=str(uuid.uuid4()), workload_id=workload["workloadId"],
                               project=workload["projectName"], action=action,
                               requested_by="test")
        await publish_model(nc.jetstream(), subjects.workload_action(
            action, workload["projectName"], workload["workloadId"]), event,
            msg_id=event.event_id)
    finally:
        await nc.close()


async def last_pod_group(nats_url: str, workload: dict) -> dict:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.jetstream().get_last_msg(
            "FAIRWAY_PODGROUPS", subjects.podgroup(workload["projectName"],
                                                   workload["workloadId"]))
        return json.loads(msg.data)
    finally:
        await nc.close()


async def test_stop_resume_and_delete_end_where_they_should(api, default_project_id, phases,
                                                            stack):
    workload = submit(api, default_project_id, "stoppable", {})  # runs until stopped
    await phases.read(workload["workloadId"], until={"Running"})

    await act(stack.nats_url, workload, "stop")
    events = await phases.read(workload["workloadId"], until={"Stopped"})
    assert [e["phase"] for e in events][-2:] == ["Stopping", "Stopped"]
    group = await last_pod_group(stack.nats_url, workload)
    assert group["pods"] == [], "a stopped workload holds no pods, so no GPUs"

    await act(stack.nats_url, workload, "resume")
    events = await phases.read(workload["workloadId"], until={"Running"}, skip=len(events))
    assert [e["phase"] for e in events] == ["Resuming", "Pending", "Initializing", "Running"]

    await act(stack.nats_url, workload, "delete")
    events = await phases.read(workload["workloadId"], until={"Deleted"}, skip=10)
    assert [e["phase"] for e in events] == ["Deleting", "Deleted"]
    group = await last_pod_group(stack.nats_url, workload)
    assert group["pods"] == [] and group["phase"] == "Deleted"
