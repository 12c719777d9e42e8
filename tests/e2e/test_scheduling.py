"""The scheduler's explanations and fair shares reach the API (issue 4)."""

import time

import pytest

from tests.e2e.test_walking_skeleton import submit

pytestmark = pytest.mark.e2e


def test_a_workload_that_cannot_fit_says_why_in_words(api, default_project_id):
    workload = submit(api, default_project_id, "far-too-big", {}, compute={
        "gpuDevicesRequest": 64})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = api.get(f"/api/v1/workloads/{workload['workloadId']}").json()
        if view["phase"] == "Pending" and view["phaseReason"] not in (
                None, "WaitingForScheduler", "CreatingPods"):
            break
        time.sleep(0.3)
    assert view["phase"] == "Pending"
    assert view["phaseReason"] not in ("WaitingForScheduler", "CreatingPods"), view
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
