"""GPU memory swap end to end (issue 17), on a stack of its own: one 80 GB GPU in a pool with
swap on (100Gi of host memory, 8Gi of the device kept for swapping) on a swap-capable node,
and one in a pool without. Three workloads of 0.6 of the device's memory each are admitted on
the swap-capable node and refused, with the reason, on the other; only the active one holds
device memory; switching activity swaps, with the swapped bytes visible in the API; host
memory for swap is never exceeded."""

import time

import pytest
from kubernetes import client, config

from tests.e2e.conftest import admin_client, stack_of_its_own
from tests.e2e.test_node_level import (
    cli_of,
    events,
    lifecycle_counter,
    pod_of,
    submit,
    wait_until,
)

pytestmark = pytest.mark.e2e

PROFILE = """
cluster:
  nodePools:
    - {name: sw, labelKey: fairway.io/node-pool, labelValue: sw}
    - {name: plain, labelKey: fairway.io/node-pool, labelValue: plain}
  nodes:
    - {name: sw-1, labels: {fairway.io/node-pool: sw}, gpus: 1, gpuMemoryMiB: 81920,
       gpuSwap: true}
    - {name: plain-1, labels: {fairway.io/node-pool: plain}, gpus: 1, gpuMemoryMiB: 81920}
timings: {pullSeconds: 0.3, startSeconds: 0.3, jitter: 0, gpuSwapMiBPerSecond: 32768}
"""
SIXTY = 49152  # 0.6 of the device, in MiB
HOST = 102400  # 100Gi
FAST = [{"name": "sim.fairway.io/pull-seconds", "value": "0.2"},
        {"name": "sim.fairway.io/start-seconds", "value": "0.2"},
        {"name": "sim.fairway.io/gpu-utilization", "value": "70"}]


@pytest.fixture(scope="module")
def swap_stack(tmp_path_factory):
    env = {"FAIRWAY_LIFECYCLE_RESERVATION_CHECK_SECONDS": "1",
           "FAIRWAY_LIFECYCLE_NODE_LEVEL_CHECK_SECONDS": "0.5"}
    with stack_of_its_own(tmp_path_factory, "gpuswap", PROFILE, env) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(swap_stack):
    with admin_client(swap_stack) as http:
        for name, optimization in (
                ("sw", {"swapEnabled": True, "cpuSwapMemorySize": "100Gi",
                        "reservedGpuMemoryForSwapOperations": "8Gi"}),
                ("plain", {})):
            response = http.post("/api/v1/node-pools", json={
                "name": name, "labelKey": "fairway.io/node-pool", "labelValue": name,
                "gpuResourceOptimization": optimization})
            assert response.status_code == 201, response.text
        yield http


@pytest.fixture(scope="module")
def kube(swap_stack) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=swap_stack.kubeconfig))


def workload(api, wid: str) -> dict:
    return api.get(f"/api/v1/workloads/{wid}").json()


def node_view(api, name: str) -> dict:
    [found] = [n for n in api.get("/api/v1/nodes").json()["nodes"] if n["name"] == name]
    return found


def host_used(kube) -> int:
    notes = kube.read_node("sw-1").metadata.annotations or {}
    return int(notes.get("kubesim.fairway.io/gpu-swap-used-mib", 0))


def test_oversubscribed_fractions_swap_on_a_swap_capable_node_only(
        api, kube, swap_stack, tmp_path, monkeypatch):
    response = api.post("/api/v1/org-unit/projects", json={
        "name": "swap", "resources": [
            {"nodePool": {"name": pool}, "gpu": {"deserved": 2, "limit": -1}}
            for pool in ("sw", "plain")]})
    assert response.status_code == 201, response.text
    pid = response.json()["id"]
    namespace = "fairway-swap"
    # refused on the node that is not swap-capable: the second 0.6 finds no device
    plain = [submit(api, "trainings", pid, f"plain-{i}", "plain", {"gpuPortionRequest": 0.6},
                    FAST) for i in (1, 2)]
    wait_until(lambda: workload(api, plain[0])["phase"] == "Running", "plain-1 running")
    refused = wait_until(lambda: (w := workload(api, plain[1]))["phase"] == "Pending"
                         and "no node there has room" in (w.get("phaseMessage") or "") and w,
                         "plain-2 pending with the scheduler's reason",
                         show=lambda: workload(api, plain[1]).get("phaseMessage"))
    assert "0.4 GPUs free" in refused["phaseMessage"], refused

    # admitted on the swap-capable node: three of 0.6 on its one device, a is active
    names = ("sw-a", "sw-b", "sw-c")
    ids = {}
    for name in names:
        active = "true" if name == "sw-a" else "false"
        ids[name] = submit(api, "trainings", pid, name, "sw", {"gpuPortionRequest": 0.6},
                           [*FAST, {"name": "sim.fairway.io/gpu-active", "value": active}])
        wait_until(lambda n=name: workload(api, ids[n])["phase"] == "Running", f"{name} running")
    pods = {n: pod_of(api, ids[n]) for n in names}
    assert all(p["node"] == "sw-1" and p["gpuDevices"] == [0] for p in pods.values()), pods

    # a fourth would need more host memory than is left: it waits, saying so
    fourth = submit(api, "trainings", pid, "sw-d", "sw", {"gpuPortionRequest": 0.6}, FAST)
    waiting = wait_until(lambda: (w := workload(api, fourth))["phase"] == "Pending"
                         and "swap host memory" in (w.get("phaseMessage") or "") and w,
                         "sw-d pending for want of swap host memory")
    assert waiting["phaseMessage"] == (f"needs {SIXTY} MiB on a device; node sw-1 has "
                                       f"{HOST - 2 * SIXTY} MiB of swap host memory left of "
                                       f"{HOST} MiB"), waiting

    # only the active one holds device memory; the others are swapped out
    def swapped_state():
        p = {n: pod_of(api, ids[n]) for n in names}
        return {n: (x.get("gpuMemoryUsedMib"), x.get("gpuSwappedMib")) for n, x in p.items()}

    wait_until(lambda: swapped_state() == {"sw-a": (SIXTY, None), "sw-b": (0, SIXTY),
                                           "sw-c": (0, SIXTY)}
               or swapped_state() == {"sw-a": (SIXTY, 0), "sw-b": (0, SIXTY),
                                      "sw-c": (0, SIXTY)},
               "only sw-a in device memory", show=swapped_state)
    [device] = node_view(api, "sw-1")["devices"]
    assert device["memoryRequestedMib"] == 3 * SIXTY  # by request: more than the device has
    assert (device["memoryInUseMib"], device["memorySwappedMib"]) == (SIXTY, 2 * SIXTY)
    assert device["utilizationPercent"] == 70
    assert node_view(api, "sw-1")["gpuSwap"] and not node_view(api, "plain-1")["gpuSwap"]
    assert node_view(api, "sw-1")["swapHostMemoryUsedMib"] == 2 * SIXTY
    names_of = {n: pods[n]["name"] for n in names}
    assert events(kube, namespace, names_of["sw-b"], "GpuMemorySwappedOut")
    top = cli_of(swap_stack, tmp_path, monkeypatch, project=None)("top", "nodes")
    assert f"{names_of['sw-b']}⇣" in top and "96" in top, top

    # activity switches from a to c: c is swapped in, a out; the host never holds more than
    # the pool's 100Gi
    for name, active in (("sw-a", "false"), ("sw-c", "true")):
        kube.patch_namespaced_pod(names_of[name], namespace, {"metadata": {"annotations": {
            "sim.fairway.io/gpu-active": active}}})
    most = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        most = max(most, host_used(kube))
        state = swapped_state()
        if state["sw-c"] == (SIXTY, 0) and state["sw-a"] == (0, SIXTY):
            break
        time.sleep(0.1)
    assert swapped_state() == {"sw-a": (0, SIXTY), "sw-b": (0, SIXTY), "sw-c": (SIXTY, 0)}
    assert most <= HOST and host_used(kube) == 2 * SIXTY
    assert events(kube, namespace, names_of["sw-c"], "GpuMemorySwappedIn")
    assert events(kube, namespace, names_of["sw-a"], "GpuMemorySwappedOut")
    swapped_out = "fairway_lifecycle_gpu_swap_bytes_total"
    assert lifecycle_counter(swap_stack, swapped_out + '{direction="out"}') >= 3 * SIXTY * 2**20
    assert lifecycle_counter(swap_stack, swapped_out + '{direction="in"}') >= SIXTY * 2**20
    for name in names:
        status = kube.read_namespaced_pod(names_of[name], namespace).status
        assert status.phase == "Running" and status.container_statuses[0].restart_count == 0
