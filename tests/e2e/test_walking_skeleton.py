"""One training through all five services, on the embedded stack with kubesim."""

import asyncio
import time

import pytest

pytestmark = pytest.mark.e2e


def submit(api, project_id: str, name: str, annotations: dict[str, str], **spec) -> dict:
    body = {"name": name, "projectId": project_id, "spec": {
        "image": "busybox", "compute": {"gpuDevicesRequest": 1},
        "annotations": [{"name": k, "value": v} for k, v in annotations.items()], **spec}}
    response = api.post("/api/v1/workloads/trainings", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def wait_phase(api, workload_id: str, phases: set[str], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workload = api.get(f"/api/v1/workloads/{workload_id}").json()
        if workload["phase"] in phases:
            return workload
        time.sleep(0.2)
    raise AssertionError(f"workload stayed {workload['phase']}: {workload['phaseMessage']}")


async def test_a_training_runs_to_completion_through_every_phase(api, default_project_id,
                                                                 phases):
    workload = submit(api, default_project_id, "hello",
                      {"sim.fairway.io/run-seconds": "2"})
    assert workload["phase"] == "Creating"
    events = await phases.read(workload["workloadId"], until={"Completed", "Failed"})
    assert [e["phase"] for e in events] == [
        "Creating", "Pending", "Initializing", "Running", "Completed"]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["previousPhase"] for e in events] == [
        None, "Creating", "Pending", "Initializing", "Running"]
    assert all(e["_subject"] == f"fairway.phase.default.{workload['workloadId']}.{e['phase']}"
               for e in events)
    assert all(e["_headers"].get("Nats-Msg-Id") for e in events)
    done = wait_phase(api, workload["workloadId"], {"Completed"}, timeout=15)
    assert done["phase"] == "Completed"
    assert done["totalRunningTimeSeconds"] >= 1.5
    history = api.get(f"/api/v1/workloads/{workload['workloadId']}/events").json()["events"]
    assert [h["to"] for h in history] == [e["phase"] for e in events]


async def test_a_training_that_exits_3_fails_after_its_retries_naming_the_exit_code(
        api, default_project_id, phases):
    workload = submit(api, default_project_id, "exits-three",
                      {"sim.fairway.io/run-seconds": "0.5", "sim.fairway.io/exit-code": "3"},
                      backoffLimit=1)
    events = await phases.read(workload["workloadId"], until={"Failed", "Completed"})
    final = events[-1]
    assert final["phase"] == "Failed"
    assert "code 3" in final["message"]
    assert final["reason"] == "BackoffLimitExceeded"
    retries = [e for e in events if e["reason"] == "Retrying"]
    assert len(retries) == 1, "backoffLimit 1 means exactly one retry"
    assert final["attempt"] == 2
    view = wait_phase(api, workload["workloadId"], {"Failed"}, timeout=15)
    assert "code 3" in view["phaseMessage"]


async def test_one_trace_crosses_all_five_services(api, default_project_id, phases, otlp):
    workload = submit(api, default_project_id, "traced", {"sim.fairway.io/run-seconds": "1"})
    events = await phases.read(workload["workloadId"], until={"Completed", "Failed"})
    traceparent = events[0]["_headers"]["traceparent"]
    trace_id = traceparent.split("-")[1]
    assert all(e["_headers"]["traceparent"].split("-")[1] == trace_id for e in events), (
        "every phase event continues the submission's trace")
    wanted = {"fairway-submission", "fairway-policy", "fairway-scheduler",
              "fairway-lifecycle", "fairway-metrics"}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not wanted <= otlp.services_in_trace(trace_id):
        await asyncio.sleep(0.2)
    assert wanted <= otlp.services_in_trace(trace_id), otlp.services_in_trace(trace_id)


def test_bad_input_is_named_and_never_a_500(api, default_project_id, stack):
    no_image = api.post("/api/v1/workloads/trainings",
                        json={"name": "x", "projectId": default_project_id, "spec": {}})
    assert no_image.status_code == 422
    assert any(d["field"] == "spec.image" for d in no_image.json()["details"])

    unknown = api.post("/api/v1/workloads/trainings",
                       json={"name": "x", "projectId": "999999", "spec": {"image": "busybox"}})
    assert unknown.status_code in (404, 422)
    assert any(d["field"] == "projectId" for d in unknown.json()["details"])

    import httpx

    anonymous = httpx.get(f"{stack.api_url}/api/v1/workloads")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == 401

    forged = httpx.get(f"{stack.api_url}/api/v1/workloads",
                       headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 401

    bad_name = api.post("/api/v1/workloads/trainings", json={
        "name": "Not_A_Name", "projectId": default_project_id, "spec": {"image": "busybox"}})
    assert bad_name.status_code == 422
    assert bad_name.json()["details"][0]["field"] == "name"

    typo = api.post("/api/v1/workloads/trainings", json={
        "name": "typo", "projectId": default_project_id,
        "spec": {"image": "busybox", "gpus": 1}})
    assert typo.status_code == 422
    assert typo.json()["details"][0]["field"] == "spec.gpus"

    not_json = api.post("/api/v1/workloads/trainings", content=b"{",
                        headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422


def test_the_same_name_twice_in_a_project_is_a_conflict(api, default_project_id):
    submit(api, default_project_id, "twice", {"sim.fairway.io/run-seconds": "1"})
    again = api.post("/api/v1/workloads/trainings", json={
        "name": "twice", "projectId": default_project_id, "spec": {"image": "busybox"}})
    assert again.status_code == 409
    assert again.json()["details"][0]["field"] == "name"


def test_health_reports_every_service(stack):
    import httpx

    health = httpx.get(f"{stack.api_url}/healthz").json()
    assert health["status"] == "ok"
    assert set(health["services"]) == {"submission", "policy", "scheduler", "lifecycle",
                                       "metrics"}
