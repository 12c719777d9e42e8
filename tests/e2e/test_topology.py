"""Topology-aware placement end to end (issue 20): a node pool names its network topology,
kubesim's profile generates the rack labels on its nodes, and a distributed workload that
requires one rack runs with every pod inside one rack, where binpack alone would have split it
over two. A stack of its own, so that no other test's workloads take room in the racks."""

import time

import pytest

from tests.e2e.conftest import admin_client, stack_of_its_own

pytestmark = pytest.mark.e2e

RACK = "topology.fairway.io/rack"
# Six 4-GPU nodes, three per rack (the profile generates the rack label: rack-1, rack-2).
PROFILE = f"""
cluster:
  nodePools:
    - name: racks
      labelKey: fairway.io/node-pool
      labelValue: racks
      networkTopology:
        levels: [{{nodeLabel: {RACK}}}]
  nodes:
    - name: tp-{{1..6}}
      labels: {{fairway.io/node-pool: racks}}
      topology: [{{nodeLabel: {RACK}, nodesPerDomain: 3}}]
      gpus: 4
      gpuMemoryMiB: 40960
      cpuMillis: 64000
      memoryMiB: 262144
"""


@pytest.fixture(scope="module")
def topology_stack(tmp_path_factory):
    with stack_of_its_own(tmp_path_factory, "topology", PROFILE) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(topology_stack):
    with admin_client(topology_stack) as client:
        yield client


def wait_until(check, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def running_nodes(api, wid: str, count: int) -> list[str] | None:
    pods = api.get(f"/api/v1/workloads/{wid}/pods").json()["pods"]
    nodes = [p["node"] for p in pods if p.get("node") and p.get("phase") == "Running"]
    return sorted(nodes) if len(nodes) == count else None


def test_a_distributed_workload_that_requires_a_rack_runs_inside_one_rack(api):
    pool = api.post("/api/v1/node-pools", json={
        "name": "racks", "labelKey": "fairway.io/node-pool", "labelValue": "racks",
        "networkTopology": {"levels": [{"nodeLabel": RACK}]}})
    assert pool.status_code == 201, pool.text
    project = api.post("/api/v1/org-unit/projects", json={
        "name": "racked", "resources": [{"nodePool": {"name": "racks"},
                                         "gpu": {"deserved": 24}}]})
    assert project.status_code == 201, project.text
    pid = project.json()["id"]
    nodes = {n["name"]: n for n in api.get("/api/v1/nodes").json()["nodes"]}
    assert {n["nodePool"] for name, n in nodes.items() if name.startswith("tp-")} == {"racks"}

    # One node of rack-1 taken: rack-1 keeps room for 2 of the gang's pods, rack-2 for 3.
    filler = api.post("/api/v1/workloads/trainings", json={
        "name": "filler", "projectId": pid, "spec": {
            "image": "busybox", "nodePools": ["racks"], "compute": {"gpuDevicesRequest": 4}}})
    assert filler.status_code == 202, filler.text
    [held] = wait_until(lambda: running_nodes(api, filler.json()["workloadId"], 1),
                        "the filler to run")
    assert held == "tp-1"  # binpack: the first node

    # A gang of three 4-GPU pods that must run in one rack: binpack alone would take tp-2,
    # tp-3 (rack-1) and tp-4 (rack-2).
    gang = api.post("/api/v1/workloads/distributed", json={
        "name": "racked-gang", "projectId": pid, "spec": {
            "image": "busybox", "nodePools": ["racks"], "distributedFramework": "PyTorch",
            "numWorkers": 2, "compute": {"gpuDevicesRequest": 4},
            "topology": {"requiredPlacement": RACK}}})
    assert gang.status_code == 202, gang.text
    wid = gang.json()["workloadId"]
    assert wait_until(lambda: running_nodes(api, wid, 3), "the gang to run") == [
        "tp-4", "tp-5", "tp-6"]

    # Asking for a level the pool does not name is refused at the door, naming the field.
    refused = api.post("/api/v1/workloads/distributed", json={
        "name": "no-zone", "projectId": pid, "spec": {
            "image": "busybox", "nodePools": ["racks"], "distributedFramework": "PyTorch",
            "numWorkers": 1, "topology": {"requiredPlacement": "topology.fairway.io/zone"}}})
    assert refused.status_code == 422, refused.text
    assert [d["field"] for d in refused.json()["details"]] == [
        "spec.topology.requiredPlacement"]
