"""Scheduling rules end to end (issue 8): a department's idle GPU limit stops an idle workspace
and leaves a busy one running, its training time limit stops a training, a project cannot
loosen them, and a workload must pick an allowed node type. The session stack runs lifecycle
with 2-second utilization windows (tests/e2e/conftest.py)."""

import asyncio
import json
import uuid
from datetime import datetime

import nats
import pytest

pytestmark = pytest.mark.e2e

IDLE = "sim.fairway.io/gpu-utilization"


@pytest.fixture(scope="module")
def org(api) -> dict:
    tag = uuid.uuid4().hex[:6]
    dept = api.post("/api/v1/org-unit/departments", json={
        "name": f"rules-{tag}",
        "schedulingRules": {"interactiveJobMaxIdleDurationSeconds": 4,
                            "trainingJobTimeLimitSeconds": 6},
        "nodeTypes": {"training": ["a100", "t4"]}})
    assert dept.status_code == 201, dept.text
    project = api.post("/api/v1/org-unit/projects", json={
        "name": f"rules-p-{tag}", "parentId": dept.json()["id"]})
    assert project.status_code == 201, project.text
    return {"department": dept.json(), "project": project.json()}


def submit(api, org: dict, kind: str, name: str, utilization: str | None = None,
           **spec) -> dict:
    annotations = [{"name": IDLE, "value": utilization}] if utilization is not None else []
    response = api.post(f"/api/v1/workloads/{kind}", json={
        "name": name, "projectId": org["project"]["id"], "spec": {
            "image": "busybox", "compute": {"gpuDevicesRequest": 1},
            "preemptibility": "preemptible", "annotations": annotations, **spec}})
    assert response.status_code == 202, response.text
    return response.json()


async def view_when(api, workload_id: str, done, timeout: float = 30.0) -> dict:
    """The API's view of the workload once `done` holds (submission follows the events)."""
    deadline = asyncio.get_running_loop().time() + timeout
    view = api.get(f"/api/v1/workloads/{workload_id}").json()
    while not done(view) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        view = api.get(f"/api/v1/workloads/{workload_id}").json()
    return view


async def utilization_events(nats_url: str, workload: dict, count: int,
                             timeout: float = 30.0) -> list[dict]:
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().subscribe(
            f"fairway.utilization.{workload['projectName']}.{workload['workloadId']}",
            stream="FAIRWAY_UTILIZATION", ordered_consumer=True)
        out = []
        while len(out) < count:
            msg = await sub.next_msg(timeout=timeout)
            out.append(json.loads(msg.data))
        return out
    finally:
        await nc.close()


async def test_an_idle_workspace_is_stopped_after_its_idle_limit(api, org, phases, stack):
    dept = org["department"]["name"]
    idle = submit(api, org, "workspaces", "idle-notebook", utilization="0")
    busy = submit(api, org, "workspaces", "busy-notebook", utilization="65")

    events = await phases.read(idle["workloadId"], until={"Stopped", "Failed"}, timeout=120)
    assert [e["phase"] for e in events][-2:] == ["Stopping", "Stopped"]
    message = (f"stopped: idle for 4 s, over the department {dept}'s idle GPU limit of 4 s "
               "(2 windows of 2 s with zero GPU utilization)")
    assert [(e["reason"], e["message"]) for e in events[-2:]] == [
        ("IdleGpuLimitReached", message)] * 2
    running = next(e for e in events if e["phase"] == "Running")
    idle_for = (datetime.fromisoformat(events[-2]["time"])
                - datetime.fromisoformat(running["time"])).total_seconds()
    assert idle_for >= 4, "stopped before two whole idle windows passed"
    view = await view_when(api, idle["workloadId"], lambda v: v["phase"] == "Stopped")
    assert (view["phase"], view["phaseReason"], view["phaseMessage"], view["desiredPhase"]) == (
        "Stopped", "IdleGpuLimitReached", message, "Stopped")

    samples = await utilization_events(stack.nats_url, idle, 2)
    assert [(s["idle"], s["utilizationPercent"], s["gpus"]) for s in samples] == [
        (True, 0.0, 1.0)] * 2
    busy_samples = await utilization_events(stack.nats_url, busy, 3)
    assert {(s["idle"], s["utilizationPercent"]) for s in busy_samples} == {(False, 65.0)}
    # three busy windows later, past the idle limit, the busy one still runs
    view = api.get(f"/api/v1/workloads/{busy['workloadId']}").json()
    assert view["phase"] == "Running", view

    # resumed, it is a new run: it runs again until it has idled for the limit once more
    r = api.post(f"/api/v1/workloads/workspaces/{idle['workloadId']}/resume")
    assert r.status_code == 202, r.text
    again = await phases.read(idle["workloadId"], until={"Running"}, skip=len(events))
    assert again[-1]["phase"] == "Running"
    stopped = await phases.read(idle["workloadId"], until={"Stopped"},
                                skip=len(events) + len(again), timeout=120)
    assert stopped[-1]["reason"] == "IdleGpuLimitReached"


async def test_a_training_is_stopped_at_its_time_limit(api, org, phases):
    dept = org["department"]["name"]
    workload = submit(api, org, "trainings", "long-training", nodeType="a100")
    assert workload["spec"]["nodeType"] == "a100"
    events = await phases.read(workload["workloadId"], until={"Stopped", "Completed", "Failed"},
                               timeout=120)
    assert [e["phase"] for e in events][-2:] == ["Stopping", "Stopped"]
    running = next(e for e in events if e["phase"] == "Running")
    ran = (datetime.fromisoformat(events[-2]["time"])
           - datetime.fromisoformat(running["time"])).total_seconds()
    assert ran >= 6, f"stopped after {ran} s, before its 6 s limit"
    assert events[-1]["reason"] == "TimeLimitReached"
    assert events[-1]["message"].startswith("stopped: running for ")
    assert events[-1]["message"].endswith(
        f"over the department {dept}'s training time limit of 6 s")


async def test_a_project_cannot_loosen_its_departments_rule(api, org):
    dept = org["department"]
    r = api.post("/api/v1/org-unit/projects", json={
        "name": f"{org['project']['name']}-loose", "parentId": dept["id"],
        "schedulingRules": {"interactiveJobMaxIdleDurationSeconds": 3600}})
    assert r.status_code == 422, r.text
    assert r.json()["details"] == [{
        "field": "schedulingRules.interactiveJobMaxIdleDurationSeconds",
        "reason": f"3,600 s would loosen department {dept['name']}'s limit of 4 s; a project "
                  "may only tighten it (at most 4)"}]
    r = api.put(f"/api/v1/org-unit/projects/{org['project']['id']}", json={
        "schedulingRules": {"trainingJobTimeLimitSeconds": 60}})
    assert r.status_code == 422, r.text
    assert r.json()["details"][0]["field"] == "schedulingRules.trainingJobTimeLimitSeconds"
    r = api.put(f"/api/v1/org-unit/projects/{org['project']['id']}", json={
        "schedulingRules": {"trainingJobTimeLimitSeconds": 5}})
    assert r.status_code == 200, r.text


def test_a_training_must_pick_an_allowed_node_type(api, org):
    r = api.post("/api/v1/workloads/trainings", json={
        "name": "no-node-type", "projectId": org["project"]["id"],
        "spec": {"image": "busybox"}})
    assert r.status_code == 422, r.text
    assert r.json()["details"][0]["field"] == "spec.nodeType"
    assert "a100, t4" in r.json()["details"][0]["reason"]
