"""The node-level scheduler end to end (issue 17), on a stack of its own: two nodes of two
80 GB GPUs, one in a pool with `nodeLevelSchedulerEnabled` and one in a pool without. Two
0.5/limit-1.0 notebooks share a device; with it on, one is moved to the idle device and both
burst; a third pod placed on that device packs them back, each restarting its GPU process
once, with events; with it off, nothing moves."""

import json
import time
from pathlib import Path

import httpx
import pytest
from kubernetes import client, config

from fairway_cli.main import app
from tests.e2e.conftest import admin_client, stack_of_its_own

pytestmark = pytest.mark.e2e

PROFILE = """
cluster:
  nodePools:
    - {name: nl, labelKey: fairway.io/node-pool, labelValue: nl}
    - {name: nloff, labelKey: fairway.io/node-pool, labelValue: nloff}
  nodes:
    - name: nl-1
      labels: {fairway.io/node-pool: nl}
      gpus: 2
      gpuMemoryMiB: 81920
    - name: nloff-1
      labels: {fairway.io/node-pool: nloff}
      gpus: 2
      gpuMemoryMiB: 81920
timings: {pullSeconds: 0.3, startSeconds: 0.3, jitter: 0}
"""
GIB = 1024
NOTEBOOK = {"gpuPortionRequest": 0.5, "gpuPortionLimit": 1.0}
# each notebook wants 60 GiB: above its 40 GiB request, within its 80 GiB limit
BURSTING = [{"name": "sim.fairway.io/pull-seconds", "value": "0.2"},
            {"name": "sim.fairway.io/start-seconds", "value": "0.2"},
            {"name": "sim.fairway.io/gpu-memory-used", "value": "60Gi"}]


@pytest.fixture(scope="module")
def node_level_stack(tmp_path_factory):
    env = {"FAIRWAY_LIFECYCLE_RESERVATION_CHECK_SECONDS": "1",
           "FAIRWAY_LIFECYCLE_NODE_LEVEL_CHECK_SECONDS": "0.5"}
    with stack_of_its_own(tmp_path_factory, "nodelevel", PROFILE, env) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(node_level_stack):
    with admin_client(node_level_stack) as http:
        for name, on in (("nl", True), ("nloff", False)):
            response = http.post("/api/v1/node-pools", json={
                "name": name, "labelKey": "fairway.io/node-pool", "labelValue": name,
                "gpuResourceOptimization": {"nodeLevelSchedulerEnabled": on}})
            assert response.status_code == 201, response.text
            assert response.json()["gpuResourceOptimization"]["nodeLevelSchedulerEnabled"] is on
        yield http


@pytest.fixture(scope="module")
def kube(node_level_stack) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(
        config_file=node_level_stack.kubeconfig))


def project(api, name: str, pool: str) -> str:
    response = api.post("/api/v1/org-unit/projects", json={
        "name": name, "resources": [{"nodePool": {"name": pool},
                                     "gpu": {"deserved": 2, "limit": -1}}]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def submit(api, kind: str, project_id: str, name: str, pool: str, compute: dict,
           annotations: list[dict]) -> str:
    response = api.post(f"/api/v1/workloads/{kind}", json={
        "name": name, "projectId": project_id, "spec": {
            "image": "busybox", "nodePools": [pool], "compute": compute,
            "annotations": annotations}})
    assert response.status_code == 202, response.text
    return response.json()["workloadId"]


def wait_until(check, what: str, timeout: float = 60, show=None):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last saw {value!r}"
                         + (f"; now {show()!r}" if show else ""))


def pod_of(api, wid: str) -> dict:
    pods = api.get(f"/api/v1/workloads/{wid}/pods").json()["pods"]
    return pods[0] if pods else {}


def running(api, wid: str) -> bool:
    return api.get(f"/api/v1/workloads/{wid}").json()["phase"] == "Running"


def kube_pod(kube, namespace: str, name: str) -> client.V1Pod:
    return kube.read_namespaced_pod(name, namespace)


def notes(kube, namespace: str, name: str) -> dict[str, str]:
    return kube_pod(kube, namespace, name).metadata.annotations or {}


def restarts(kube, namespace: str, name: str) -> int:
    return int(notes(kube, namespace, name).get("kubesim.fairway.io/gpu-process-restarts", 0))


def events(kube, namespace: str, name: str, reason: str) -> list[str]:
    return [e.message for e in kube.list_namespaced_event(namespace).items
            if e.involved_object.name == name and e.reason == reason]


def two_notebooks(api, pid: str, pool: str) -> tuple[str, str]:
    """Two notebooks, the second submitted once the first runs: the cluster scheduler packs
    them onto one device by their requests."""
    first = submit(api, "workspaces", pid, "nb-a", pool, NOTEBOOK, BURSTING)
    wait_until(lambda: running(api, first), "the first notebook running")
    second = submit(api, "workspaces", pid, "nb-b", pool, NOTEBOOK, BURSTING)
    wait_until(lambda: running(api, second), "the second notebook running")
    return first, second


def lifecycle_counter(stack, line: str) -> float:
    text = httpx.get(f"{stack.service_url('lifecycle')}/metrics", timeout=10).text
    return sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines()
               if row.startswith(line))


def cli_of(stack, tmp_path, monkeypatch, project: str | None = "spread"):
    """The CLI logged in as the stack's administrator, in `project` (None: none set)."""
    from typer.testing import CliRunner

    monkeypatch.setenv("FAIRWAY_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("FAIRWAY_STATE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("FAIRWAY_TOKEN", raising=False)
    monkeypatch.delenv("FAIRWAY_API_URL", raising=False)
    creds = json.loads((Path(stack.state_dir) / "admin.json").read_text())
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args), env={"COLUMNS": "240"})
        assert result.exit_code == 0, result.output
        return result.output

    cli("login", "--url", stack.api_url, "-u", creds["username"], "--password",
        creds["password"])
    if project is not None:
        cli("project", "set", project)
    return cli


def device_of(api, node: str, index: int) -> dict:
    [found] = [n for n in api.get("/api/v1/nodes").json()["nodes"] if n["name"] == node]
    return found["devices"][index]


def test_burstable_notebooks_spread_onto_idle_devices_and_are_packed_back(
        api, kube, node_level_stack, tmp_path, monkeypatch):
    pid = project(api, "spread", "nl")
    namespace = "fairway-spread"
    a, b = two_notebooks(api, pid, "nl")
    pod_a, pod_b = pod_of(api, a), pod_of(api, b)
    assert pod_a["node"] == pod_b["node"] == "nl-1"
    home = pod_a["gpuDevices"]
    assert pod_b["gpuDevices"] == home, "the cluster scheduler packs them by request"
    # one per device, both bursting (60 GiB each, above their 40 GiB requests)
    spread = wait_until(lambda: (p := [pod_of(api, a), pod_of(api, b)])
                        and {tuple(x.get("gpuCurrentDevices") or x["gpuDevices"]) for x in p}
                        == {(0,), (1,)} and all(x.get("gpuMemoryUsedMib") == 60 * GIB for x in p)
                        and p, "the notebooks spread onto both devices, bursting")
    moved = [x for x in spread if (x.get("gpuCurrentDevices") or x["gpuDevices"]) != home]
    assert len(moved) == 1, spread
    mover, stayer = moved[0]["name"], next(x["name"] for x in spread if x not in moved)
    assert [x["gpuDevices"] for x in spread] == [home, home], "still counted where placed"
    # moved before its GPU process started, or restarted once on the idle device
    spread_restarts = restarts(kube, namespace, mover)
    assert spread_restarts <= 1 and restarts(kube, namespace, stayer) == 0
    [spread_event] = events(kube, namespace, mover, "GpuProcessMoved")
    assert "(spread)" in spread_event and "device 1 was idle" in spread_event.replace(
        f"device {1 - home[0]}", "device 1")
    assert kube_pod(kube, namespace, mover).status.container_statuses[0].restart_count == 0
    # the node's devices: the mover counted on its own device, running on the other
    away = 1 - home[0]
    visited = wait_until(lambda: (d := device_of(api, "nl-1", away))["memoryInUseMib"]
                         == 60 * GIB and d, "the visited device's memory in use")
    assert [(p["name"], p["countedHere"], p["runsHere"]) for p in visited["pods"]] == [
        (mover, False, True)]
    assert visited["memoryRequestedMib"] == 0
    assert device_of(api, "nl-1", home[0])["memoryRequestedMib"] == 80 * GIB
    cli = cli_of(node_level_stack, tmp_path, monkeypatch)
    assert f"runs on device {away} now" in cli("describe", "nb-b" if "nb-b" in mover
                                               else "nb-a")
    top = cli("top", "nodes")
    assert "GPU devices" in top and f"{mover}←" in top and f"{mover}→" in top, top

    # a third pod placed on the visited device: they are packed back, each GPU process
    # restarting once, and on the shared device neither bursts above its request
    third = submit(api, "trainings", pid, "third", "nl", {"gpuPortionRequest": 0.5},
                   BURSTING[:2])
    wait_until(lambda: running(api, third), "the third pod running")
    assert pod_of(api, third)["gpuDevices"] == [1 - home[0]]
    packed = wait_until(lambda: (p := [pod_of(api, a), pod_of(api, b)])
                        and all(x.get("gpuCurrentDevices") == home for x in p)
                        and all(x.get("gpuMemoryUsedMib") == 40 * GIB for x in p) and p,
                        "the notebooks packed back onto one device within their requests",
                        show=lambda: [pod_of(api, a), pod_of(api, b)])
    assert all(x["gpuCurrentMemoryLimitMib"] == 40 * GIB for x in packed), packed
    assert restarts(kube, namespace, mover) == spread_restarts + 1
    assert restarts(kube, namespace, stayer) == 1
    assert len(events(kube, namespace, mover, "GpuProcessMoved")) == 2
    assert sorted("(consolidate)" in m for m in events(kube, namespace, mover,
                                                       "GpuProcessMoved")) == [False, True]
    [limited] = events(kube, namespace, stayer, "GpuBurstLimited")
    assert "lowered from 80 GiB to 40 GiB" in limited
    assert len(events(kube, namespace, stayer, "GpuProcessRestarted")) == 1
    moves = "fairway_lifecycle_node_level_moves_total"
    assert lifecycle_counter(node_level_stack, moves + '{reason="spread"}') >= 1
    assert lifecycle_counter(node_level_stack, moves + '{reason="consolidate"}') >= 1
    assert lifecycle_counter(node_level_stack,
                             "fairway_lifecycle_node_level_burst_kills_total ") >= 1
    for name in (mover, stayer):
        pod = kube_pod(kube, namespace, name)
        assert pod.status.container_statuses[0].restart_count == 0, "the pod is not restarted"
        assert pod.status.phase == "Running"
    # stable: nothing changes any more
    time.sleep(2)
    assert restarts(kube, namespace, mover) == spread_restarts + 1
    assert restarts(kube, namespace, stayer) == 1
    for kind, wid in (("workspaces", a), ("workspaces", b), ("trainings", third)):
        api.delete(f"/api/v1/workloads/{kind}/{wid}")


def test_with_the_node_level_scheduler_off_nothing_moves(api, kube):
    pid = project(api, "still", "nloff")
    namespace = "fairway-still"
    a, b = two_notebooks(api, pid, "nloff")
    wait_until(lambda: all(pod_of(api, w).get("gpuMemoryUsedMib") == 60 * GIB for w in (a, b)),
               "both notebooks using their memory")
    time.sleep(3)  # six looks of the node-level scheduler
    for wid in (a, b):
        pod = pod_of(api, wid)
        assert pod["node"] == "nloff-1" and pod["gpuDevices"] == pod_of(api, a)["gpuDevices"]
        assert not pod.get("gpuCurrentDevices"), pod
        assert "fairway.io/gpu-current-devices" not in notes(kube, namespace, pod["name"])
        assert restarts(kube, namespace, pod["name"]) == 0
        assert not events(kube, namespace, pod["name"], "GpuProcessMoved")
    for wid in (a, b):
        api.delete(f"/api/v1/workloads/workspaces/{wid}")
