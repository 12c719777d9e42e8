"""Foreign GPUs count, end to end (issue 18): a pod that another scheduler — kubesim's stand-in
for kube-scheduler — binds to a node holds its GPUs, so Fairway places elsewhere, makes a
workload wait when there is no elsewhere, and uses the node again once the pod is gone. A
stack of its own: two 4-GPU nodes that no other test's workloads take."""

import time

import pytest
from kubernetes import client, config

from tests.e2e.conftest import admin_client, stack_of_its_own
from tests.e2e.test_walking_skeleton import submit, wait_phase

pytestmark = pytest.mark.e2e

PROFILE = """
cluster:
  nodes:
    - name: fx-{1..2}
      gpus: 4
      gpuMemoryMiB: 40960
      cpuMillis: 32000
      memoryMiB: 131072
"""


@pytest.fixture(scope="module")
def foreign_stack(tmp_path_factory):
    with stack_of_its_own(tmp_path_factory, "foreign", PROFILE) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(foreign_stack):
    with admin_client(foreign_stack) as c:
        yield c


@pytest.fixture(scope="module")
def kube(foreign_stack) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=foreign_stack.kubeconfig))


def wait_until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def nodes_of(api, wid: str) -> list[str]:
    return sorted(p["node"] for p in api.get(f"/api/v1/workloads/{wid}/pods").json()["pods"]
                  if p.get("node"))


def test_a_pod_another_scheduler_bound_makes_fairway_place_elsewhere(api, kube):
    project = next(p["id"] for p in api.get("/api/v1/org-unit/projects").json()["projects"]
                   if p["name"] == "default")
    kube.create_namespace({"metadata": {"name": "outside"}})
    kube.create_namespaced_pod("outside", {
        "metadata": {"name": "holder"},
        "spec": {"containers": [{"name": "main", "image": "cuda", "resources": {
            "limits": {"nvidia.com/gpu": "4"}}}]}})  # no schedulerName: default-scheduler
    holder = wait_until(lambda: kube.read_namespaced_pod("holder", "outside").spec.node_name,
                        "the stand-in to bind the holder")
    other = {"fx-1": "fx-2", "fx-2": "fx-1"}[holder]

    first = submit(api, project, "beside", {}, compute={"gpuDevicesRequest": 4})
    wait_phase(api, first["workloadId"], {"Running"})
    assert nodes_of(api, first["workloadId"]) == [other]

    # no elsewhere: it waits, and says why
    second = submit(api, project, "after", {}, compute={"gpuDevicesRequest": 4})
    starting = (None, "WaitingForScheduler", "CreatingPods", "WaitingForPods")
    view = wait_until(lambda: (v := api.get(f"/api/v1/workloads/{second['workloadId']}").json())
                      ["phaseReason"] not in starting and v, "a pending reason")
    assert view["phase"] == "Pending", view
    assert "4" in view["phaseMessage"], view["phaseMessage"]
    time.sleep(2)  # several cycles: still not placed on the held node
    assert api.get(f"/api/v1/workloads/{second['workloadId']}").json()["phase"] == "Pending"

    # the holder goes: its node is Fairway's to use again
    kube.delete_namespaced_pod("holder", "outside", grace_period_seconds=0)
    wait_phase(api, second["workloadId"], {"Running"})
    assert nodes_of(api, second["workloadId"]) == [holder]
