"""Time-aware fairness end to end (issue 20): a node pool turns it on through the API; a
project that has held the whole pool yields over-quota GPUs to one that has not, by reclaim;
the projects' status shows their usage and corrected weights, and the reclaimed workloads say
that usage is why. A stack of its own, so no other test's pool has it on."""

import time

import pytest

from tests.e2e.conftest import admin_client, stack_of_its_own
from tests.e2e.test_reclaim import phases_of, wait_until

pytestmark = pytest.mark.e2e

PROFILE = """
cluster:
  nodePools:
    - {name: tf, labelKey: fairway.io/node-pool, labelValue: tf}
  nodes:
    - name: tf-1
      labels: {fairway.io/node-pool: tf}
      gpus: 8
      gpuMemoryMiB: 40960
      cpuMillis: 64000
      memoryMiB: 262144
"""


@pytest.fixture(scope="module")
def fair_stack(tmp_path_factory):
    # Usage moves shares as time passes: a cycle at least every second, even when idle.
    env = {"FAIRWAY_SCHEDULER_TIME_AWARE_FAIRNESS_REFRESH_SECONDS": "1"}
    with stack_of_its_own(tmp_path_factory, "timefair", PROFILE, env) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(fair_stack):
    with admin_client(fair_stack) as client:
        yield client


def project(api, name: str) -> str:
    response = api.post("/api/v1/org-unit/projects", json={
        "name": name, "resources": [{"nodePool": {"name": "tf"}, "gpu": {"deserved": 0}}]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def train(api, project_id: str, name: str) -> str:
    response = api.post("/api/v1/workloads/trainings", json={
        "name": name, "projectId": project_id, "spec": {
            "image": "busybox", "nodePools": ["tf"], "compute": {"gpuDevicesRequest": 1}}})
    assert response.status_code == 202, response.text
    return response.json()["workloadId"]


def pool_status(api, project_id: str) -> dict:
    status = api.get(f"/api/v1/org-unit/projects/{project_id}").json()["status"]
    return next((p for p in status["nodePoolResources"] if p["nodePool"]["name"] == "tf"), {})


def test_a_project_that_held_the_pool_yields_to_one_that_did_not(api, fair_stack):
    response = api.post("/api/v1/node-pools", json={
        "name": "tf", "labelKey": "fairway.io/node-pool", "labelValue": "tf",
        "schedulingConfiguration": {"timeAwareFairness": {
            "enabled": True, "windowType": "sliding", "windowSize": "1h", "kValue": 1}}})
    assert response.status_code == 201, response.text
    heavy, light = project(api, "heavy"), project(api, "light")

    # heavy takes the whole pool while nobody else wants it, and builds up usage.
    held = [train(api, heavy, f"heavy-{i}") for i in range(8)]
    wait_until(lambda: set(phases_of(api, held).values()) == {"Running"}, "heavy to run",
               timeout=90)
    used = wait_until(lambda: (pool_status(api, heavy).get("usage") or {}).get("gpu"),
                      "heavy's usage in its status", timeout=60)
    time.sleep(30)  # more usage: light catches up after holding as much for as long

    # light asks for the whole pool too. By weight alone it would get 4 GPUs; heavy's usage
    # corrects the weights (heavy near 0, light near 1 at first), and light reclaims more
    # than 4 — until its own usage catches up with heavy's and the shares even out.
    for i in range(8):
        train(api, light, f"light-{i}")

    def light_ahead():
        status = pool_status(api, light)
        return status if status.get("allocated", {}).get("gpu", 0) >= 6 else None

    status = wait_until(light_ahead, "light to hold more than its weight alone gives",
                        timeout=60)
    assert status["fairShare"]["gpu"] >= 6, status
    assert status["adjustedOverQuotaWeight"]["gpu"] > 0.5, status
    assert (pool_status(api, heavy)["usage"]["gpu"] or 0) >= used

    # A reclaimed heavy workload waits, saying that its usage is why.
    def waiting_message():
        for wid in held:
            view = api.get(f"/api/v1/workloads/{wid}").json()
            if view["phase"] == "Pending" and "without time-aware fairness" in (
                    view.get("phaseMessage") or ""):
                return view["phaseMessage"]
        return None

    message = wait_until(waiting_message, "a reclaimed workload's reason", timeout=60)
    assert "GPU-hours in the usage window" in message, message
