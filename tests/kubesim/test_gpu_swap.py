"""GPU memory swap as kubesim plays it: a fraction's activity from its time profile, its
memory swapped out to host memory at lifecycle's word and back in after a delay proportional
to the memory moved, the host memory per node, and utilization only for active ones."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from fairway_kubesim.objects import active_at, gpu_activity
from fairway_kubesim.profile import ProfileError, parse_profile_text

from .conftest import bind, make_pod, wait_pod

NODE = "a100-1"
USED = "kubesim.fairway.io/gpu-memory-used-mib"
SWAPPED = "kubesim.fairway.io/gpu-swapped-mib"
ACTIVE = "kubesim.fairway.io/gpu-active"
UTILIZATION = "kubesim.fairway.io/gpu-utilization"
HOST = "kubesim.fairway.io/gpu-swap-used-mib"


def notes(pod: client.V1Pod) -> dict[str, str]:
    return pod.metadata.annotations or {}


@pytest.mark.parametrize(("value", "phases"), [
    (None, ()), ("true", ()), ("false", ((False, 0.0),)),
    ("active:30s,idle:60s", ((True, 30.0), (False, 60.0))),
])
def test_activity_profiles_read(value, phases) -> None:
    assert gpu_activity(value) == phases


@pytest.mark.parametrize(("elapsed", "state"), [
    (0, (True, 30.0)), (29, (True, 1.0)), (30, (False, 60.0)), (95, (True, 25.0))])
def test_an_activity_profile_repeats(elapsed, state) -> None:
    assert active_at(gpu_activity("active:30s,idle:60s"), elapsed) == state


@pytest.mark.parametrize("value", ["sometimes", "active:30", "busy:3s", "idle:0s"])
def test_bad_activity_profiles_are_refused_at_the_door(fast_api: client.CoreV1Api,
                                                       fast_ns: str, value: str) -> None:
    pod = make_pod("bad-activity", {"sim.fairway.io/gpu-active": value})
    with pytest.raises(client.ApiException) as refused:
        fast_api.create_namespaced_pod(fast_ns, pod)
    assert refused.value.status == 422
    assert "sim.fairway.io/gpu-active" in refused.value.body


def swap(api: client.CoreV1Api, ns: str, name: str, mib: int) -> None:
    api.patch_namespaced_pod(name, ns, {"metadata": {"annotations": {
        "fairway.io/gpu-swapped-mib": str(mib)}}})


def test_a_fraction_is_swapped_out_and_back_in(fast_api: client.CoreV1Api,
                                               fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod(
        "holder", gpus=1, restart_policy="Always",
        labels={"fairway.io/gpu-reservation": "true"}, node_name=NODE))
    holder = wait_pod(fast_api, fast_ns, "holder", lambda p: "fairway.io/gpu-uuid" in notes(p))
    uuid = notes(holder)["fairway.io/gpu-uuid"]
    pods = {"busy": "true", "resting": "false"}
    for name, active in pods.items():
        fast_api.create_namespaced_pod(fast_ns, make_pod(name, {
            "fairway.io/gpu-uuids": uuid, "fairway.io/gpu-memory-request-mib": "49152",
            "sim.fairway.io/gpu-active": active, "sim.fairway.io/gpu-utilization": "70"},
            restart_policy="Always"))
        bind(fast_api, fast_ns, name, NODE)
    busy = wait_pod(fast_api, fast_ns, "busy", lambda p: notes(p).get(USED) == "49152")
    assert (notes(busy)[ACTIVE], notes(busy)[UTILIZATION]) == ("true", "70")
    resting = wait_pod(fast_api, fast_ns, "resting", lambda p: notes(p).get(USED) == "49152")
    assert (notes(resting)[ACTIVE], notes(resting)[UTILIZATION]) == ("false", "0")
    # lifecycle swaps the idle one out: its memory moves to the node's host memory (3 s at
    # the default 16 GiB/s), then none of it is on the device
    asked = time.monotonic()
    swap(fast_api, fast_ns, "resting", 49152)
    resting = wait_pod(fast_api, fast_ns, "resting", lambda p: notes(p).get(SWAPPED) == "49152")
    assert time.monotonic() - asked >= 49152 / 16384 * 0.9
    assert notes(resting)[USED] == "0"
    assert fast_api.read_node(NODE).metadata.annotations[HOST] == "49152"
    # the device, on its reservation pod: what is in its memory, what is swapped out
    wait_pod(fast_api, fast_ns, "holder", lambda p: (notes(p).get(USED), notes(p).get(SWAPPED))
             == ("49152", "49152"))
    # the activity switches (annotated on the running pods): lifecycle swaps the now idle one
    # out and the now active one in, one exchange: the host never holds both
    for name, active in (("busy", "false"), ("resting", "true")):
        fast_api.patch_namespaced_pod(name, fast_ns, {"metadata": {"annotations": {
            "sim.fairway.io/gpu-active": active}}})
    wait_pod(fast_api, fast_ns, "busy", lambda p: notes(p).get(ACTIVE) == "false"
             and notes(p).get(UTILIZATION) == "0")
    swap(fast_api, fast_ns, "busy", 49152)
    swap(fast_api, fast_ns, "resting", 0)
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen.add(fast_api.read_node(NODE).metadata.annotations[HOST])
        resting = fast_api.read_namespaced_pod("resting", fast_ns)
        if SWAPPED not in notes(resting):
            break
        time.sleep(0.05)
    assert seen == {"49152"}, seen
    busy = wait_pod(fast_api, fast_ns, "busy", lambda p: notes(p).get(SWAPPED) == "49152")
    assert (notes(busy)[USED], notes(resting)[USED], notes(resting)[UTILIZATION]) == (
        "0", "49152", "70")
    events = [e.reason for e in fast_api.list_namespaced_event(fast_ns).items
              if e.involved_object.name == "resting"]
    assert events.count("GpuMemorySwappedOut") == 1 and events.count("GpuMemorySwappedIn") == 1
    for name in [*pods, "holder"]:
        fast_api.delete_namespaced_pod(name, fast_ns, grace_period_seconds=0)


def test_a_profile_node_with_gpu_swap_is_labelled_swap_capable() -> None:
    profile = parse_profile_text("""
nodes:
  - {name: s1, gpus: 2, gpuMemoryMiB: 81920, gpuSwap: true}
  - {name: p1, gpus: 2, gpuMemoryMiB: 81920}
timings: {gpuSwapMiBPerSecond: 8192}
""")
    assert profile.nodes[0].labels["fairway.io/gpu-swap"] == "true"
    assert "fairway.io/gpu-swap" not in profile.nodes[1].labels
    assert profile.timings.gpu_swap_mib_per_second == 8192
    with pytest.raises(ProfileError, match=r"gpuSwap: set, but the node has no gpus"):
        parse_profile_text("nodes:\n  - {name: c1, gpuSwap: true}\n")


def test_a_profile_pool_carries_its_gpu_resource_optimization_for_make_up() -> None:
    profile = parse_profile_text("""
cluster:
  nodePools:
    - {name: sw, labelKey: fairway.io/node-pool, labelValue: sw,
       gpuResourceOptimization: {swapEnabled: true, cpuSwapMemorySize: 100Gi}}
  nodes:
    - {name: s1, gpus: 1, gpuMemoryMiB: 81920, gpuSwap: true, labels: {fairway.io/node-pool: sw}}
""")
    [pool] = [p for p in profile.node_pools if p.name == "sw"]
    assert pool.gpu_resource_optimization == {"swapEnabled": True, "cpuSwapMemorySize": "100Gi"}
