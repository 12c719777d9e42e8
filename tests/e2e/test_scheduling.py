"""The scheduler's explanations and fair shares reach the API (issue 4)."""

import time

import pytest

from tests.e2e.test_walking_skeleton import submit

pytestmark = pytest.mark.e2e


def wait_view(api, workload_id: str, done) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = api.get(f"/api/v1/workloads/{workload_id}").json()
        if done(view):
            return view
        time.sleep(0.3)
    return view


def test_a_gang_that_cannot_fit_now_waits_and_says_why(api, default_project_id):
    body = {"name": "big-gang", "projectId": default_project_id, "spec": {
        "image": "busybox", "numWorkers": 2, "compute": {"gpuDevicesRequest": 8}}}
    response = api.post("/api/v1/workloads/distributed", json=body)
    assert response.status_code == 202, response.text
    starting = (None, "WaitingForScheduler", "CreatingPods", "WaitingForPods")
    view = wait_view(api, response.json()["workloadId"], lambda v: v["phase"] == "Pending" and
                     v["phaseReason"] not in starting)
    assert view["phase"] == "Pending"
    assert view["phaseReason"] not in starting, view
    assert "8" in view["phaseMessage"], view["phaseMessage"]


def test_a_workload_no_node_could_ever_hold_is_refused_with_the_reason(api,
                                                                        default_project_id):
    workload = submit(api, default_project_id, "far-too-big", {}, compute={
        "gpuDevicesRequest": 64})
    view = wait_view(api, workload["workloadId"], lambda v: v["phase"] == "Failed")
    assert view["phase"] == "Failed", view
    assert "64" in view["phaseMessage"], view["phaseMessage"]


def test_projects_show_their_fair_share(api, default_project_id):
    submit(api, default_project_id, "share-holder", {})  # runs until the session ends
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        project = api.get(f"/api/v1/org-unit/projects/{default_project_id}").json()
        shares = [p["fairShare"]["gpu"] for p in project["status"]["nodePoolResources"]]
        if any(share > 0 for share in shares):
            break
        time.sleep(0.3)
    assert any(share > 0 for share in shares), project["status"]


def test_the_pool_in_use_and_cpu_and_memory_reach_the_workload_project_and_department(
        api, default_project_id):
    """A workload that may run in any pool shows the one it runs in; its project and its
    department count its CPU and memory there, beside its GPU."""
    workload = submit(api, default_project_id, "cpu-and-memory", {}, compute={
        "gpuDevicesRequest": 1, "cpuCoreRequest": 2, "cpuMemoryRequest": "4G"})
    view = wait_view(api, workload["workloadId"],
                     lambda v: v["phase"] == "Running" and v["currentNodePools"])
    assert view["phase"] == "Running" and view["requestedNodePools"] == [], view
    [pool] = view["currentNodePools"]
    pods = api.get(f"/api/v1/workloads/{workload['workloadId']}/pods").json()["pods"]
    assert {p["nodePool"] for p in pods} == {pool}
    project = api.get(f"/api/v1/org-unit/projects/{default_project_id}").json()
    department_id = project["parentId"]

    def held(unit: dict) -> dict:
        return next(r["allocated"] for r in unit["status"]["nodePoolResources"]
                    if r["nodePool"]["name"] == pool)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        project = api.get(f"/api/v1/org-unit/projects/{default_project_id}").json()
        department = api.get(f"/api/v1/org-unit/departments/{department_id}").json()
        if held(project)["cpu"] >= 2 and held(department)["cpu"] >= 2:
            break
        time.sleep(0.3)
    for unit in (project, department):
        # CPU in cores, as quotas are given; 4G is 4·10⁹ bytes: 3,815 MiB.
        assert held(unit)["cpu"] >= 2 and held(unit)["memory"] >= 3815, unit["status"]
        assert held(unit)["gpu"] >= 1, unit["status"]
