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
    wid = workload["workloadId"]
    events = await phases.read(wid, until={"Completed", "Failed"})
    trace_id = events[0]["_headers"]["traceparent"].split("-")[1]  # Creating: the submission's
    wanted = {"fairway-submission", "fairway-policy", "fairway-scheduler",
              "fairway-lifecycle", "fairway-metrics"}
    later = events[-1]  # Completed: a transition Kubernetes drove, long after the submission
    later_trace = later["_headers"]["traceparent"].split("-")[1]

    def complete() -> bool:
        spans = otlp.spans_in_trace(trace_id)
        return (wanted <= {s.service for s in spans}
                and any(s.name.startswith("kube ") for s in spans)
                and any(s.trace_id == later_trace for s in otlp.spans_linking_to(trace_id)))

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not complete():
        await asyncio.sleep(0.2)
    spans = otlp.spans_in_trace(trace_id)
    assert wanted <= {s.service for s in spans}, {s.service for s in spans}
    # the Kubernetes calls that made the pods are in the submission's trace, as client spans
    kube = [s for s in spans if s.name.startswith("kube ")]
    assert any(s.name == "kube create_namespaced_pod" for s in kube), sorted(
        {s.name for s in spans})
    assert all(s.service == "fairway-lifecycle" and s.kind == 3 for s in kube)  # CLIENT
    # consumer spans say which workload and project they handled
    handled = [s for s in spans if s.attributes.get("fairway.workload_id") == wid]
    assert {s.service for s in handled} >= {"fairway-scheduler", "fairway-lifecycle",
                                            "fairway-metrics"}
    assert all(s.attributes.get("fairway.project") == "default" for s in handled)
    bound = [s for s in spans if s.attributes.get("fairway.decision", "").startswith("bind:")]
    assert bound, "lifecycle's handling of the bind decision names the decision"
    # the later transition has a trace of its own, linked back to the submission's
    assert later_trace != trace_id
    linking = [s for s in otlp.spans_linking_to(trace_id) if s.trace_id == later_trace]
    assert linking, "the Completed transition's trace links back to the submission"
    assert linking[0].attributes["fairway.workload_id"] == wid
    assert linking[0].attributes["fairway.phase"] in {"Running", "Initializing", "Pending"}


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
