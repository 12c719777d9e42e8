"""GPU devices as kubesim plays them: UUIDs per node, the device plugin's allocation, the
reservation program, GPU fractions' memory in use and their GPU out-of-memory kill."""

from __future__ import annotations

import pytest
from kubernetes import client

from fairway_kubesim.objects import gpu_memory_steps, gpu_uuid

from .conftest import bind, make_pod, wait_pod

NODE = "a100-2"
DEVICES = "kubesim.fairway.io/gpu-uuids"
USED = "kubesim.fairway.io/gpu-memory-used-mib"


def annotations(pod: client.V1Pod) -> dict[str, str]:
    return pod.metadata.annotations or {}


def running(pod: client.V1Pod) -> bool:
    return pod.status.phase == "Running"


def test_every_gpu_has_a_stable_uuid_listed_on_its_node(fast_api: client.CoreV1Api) -> None:
    node = fast_api.read_node(NODE)
    uuids = node.metadata.annotations["fairway.io/gpu-uuids"].split(",")
    assert uuids == [gpu_uuid(NODE, i) for i in range(8)]
    assert len(set(uuids)) == 8 and all(u.startswith("GPU-") and len(u) == 40 for u in uuids)
    assert node.metadata.labels["nvidia.com/gpu.memory"] == "81920"


def test_the_device_plugin_gives_free_devices_and_takes_them_back(
        fast_api: client.CoreV1Api, fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod("two", gpus=2, restart_policy="Always"))
    bind(fast_api, fast_ns, "two", NODE)
    two = wait_pod(fast_api, fast_ns, "two", running)
    held = annotations(two)[DEVICES].split(",")
    assert len(held) == 2
    fast_api.create_namespaced_pod(fast_ns, make_pod("one", gpus=1, restart_policy="Always"))
    bind(fast_api, fast_ns, "one", NODE)
    one = wait_pod(fast_api, fast_ns, "one", running)
    assert annotations(one)[DEVICES] not in held  # a device of its own
    fast_api.delete_namespaced_pod("two", fast_ns, grace_period_seconds=0)
    fast_api.delete_namespaced_pod("one", fast_ns, grace_period_seconds=0)


def test_a_pod_whose_devices_are_taken_is_refused_with_a_warning_event(
        fast_api: client.CoreV1Api, fast_ns: str) -> None:
    """A device booked twice leaves a record: the kubelet refuses the second pod at admission
    (OutOfnvidia.com/gpu, or UnexpectedAdmissionError when the device plugin has no device)
    and says so in a Warning event, as a real kubelet does."""
    # more than the node has: refused whatever the other tests left running on it
    fast_api.create_namespaced_pod(fast_ns, make_pod("late", gpus=9, restart_policy="Always"))
    bind(fast_api, fast_ns, "late", NODE)
    late = wait_pod(fast_api, fast_ns, "late", lambda p: p.status.phase == "Failed")
    assert late.status.reason == "OutOfnvidia.com/gpu"  # the node's requests add up to more
    [event] = [e for e in fast_api.list_namespaced_event(
        fast_ns, field_selector="involvedObject.name=late").items
        if e.reason == late.status.reason]
    assert event.type == "Warning" and event.message == late.status.message
    fast_api.delete_namespaced_pod("late", fast_ns, grace_period_seconds=0)


def test_a_reservation_pod_reports_the_uuid_of_its_device(fast_api: client.CoreV1Api,
                                                          fast_ns: str) -> None:
    pod = make_pod("reserve", gpus=1, restart_policy="Always",
                   labels={"fairway.io/gpu-reservation": "true"}, node_name=NODE)
    fast_api.create_namespaced_pod(fast_ns, pod)
    got = wait_pod(fast_api, fast_ns, "reserve",
                   lambda p: "fairway.io/gpu-uuid" in annotations(p))
    assert annotations(got)["fairway.io/gpu-uuid"] == annotations(got)[DEVICES]
    assert annotations(got)["fairway.io/gpu-uuid"] in [gpu_uuid(NODE, i) for i in range(8)]
    fast_api.delete_namespaced_pod("reserve", fast_ns, grace_period_seconds=0)


def fraction(name: str, uuid: str, used: str | None, limit: int = 40960,
             restart_policy: str = "Never") -> client.V1Pod:
    notes = {"fairway.io/gpu-uuids": uuid, "fairway.io/gpu-memory-request-mib": "20480",
             "fairway.io/gpu-memory-limit-mib": str(limit)}
    if used is not None:
        notes["sim.fairway.io/gpu-memory-used"] = used
    return make_pod(name, notes, restart_policy=restart_policy)


def test_fractions_report_the_gpu_memory_they_use(fast_api: client.CoreV1Api,
                                                  fast_ns: str) -> None:
    uuid = gpu_uuid(NODE, 7)
    fast_api.create_namespaced_pod(fast_ns, fraction("as-asked", uuid, None))
    fast_api.create_namespaced_pod(fast_ns, fraction("steps", uuid, "4Gi,0.6s=12Gi"))
    for name in ("as-asked", "steps"):
        bind(fast_api, fast_ns, name, NODE)
    assert annotations(wait_pod(fast_api, fast_ns, "as-asked",
                                lambda p: USED in annotations(p)))[USED] == "20480"
    assert annotations(wait_pod(fast_api, fast_ns, "steps",
                                lambda p: annotations(p).get(USED) == "4096"))
    got = wait_pod(fast_api, fast_ns, "steps", lambda p: annotations(p).get(USED) == "12288")
    assert running(got)
    for name in ("as-asked", "steps"):
        fast_api.delete_namespaced_pod(name, fast_ns, grace_period_seconds=0)


def test_a_fraction_above_its_limit_fails_with_gpu_out_of_memory(
        fast_api: client.CoreV1Api, fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, fraction("greedy", gpu_uuid(NODE, 6),
                                                     "1Gi,0.3s=50Gi"))
    bind(fast_api, fast_ns, "greedy", NODE)
    got = wait_pod(fast_api, fast_ns, "greedy", lambda p: p.status.phase == "Failed")
    term = got.status.container_statuses[0].state.terminated
    assert (term.reason, term.exit_code) == ("GPUOutOfMemory", 1)
    assert term.message == "CUDA out of memory: used 51200 MiB of its 40960 MiB GPU memory limit"
    reasons = {e.reason for e in fast_api.list_namespaced_event(
        fast_ns, field_selector="involvedObject.name=greedy").items}
    assert "GPUOutOfMemory" in reasons


def test_a_restarting_fraction_runs_out_of_gpu_memory_again(fast_api: client.CoreV1Api,
                                                            fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, fraction(
        "again", gpu_uuid(NODE, 5), "41Gi", restart_policy="Always"))
    bind(fast_api, fast_ns, "again", NODE)
    got = wait_pod(fast_api, fast_ns, "again",
                   lambda p: (p.status.container_statuses or [None])[0] is not None
                   and p.status.container_statuses[0].restart_count >= 2)
    last = got.status.container_statuses[0].last_state.terminated
    assert last.reason == "GPUOutOfMemory"
    fast_api.delete_namespaced_pod("again", fast_ns, grace_period_seconds=0)


@pytest.mark.parametrize(("value", "steps"), [
    ("12Gi", ((0.0, 12288),)),
    ("4Gi,30s=12Gi,60s=2Gi", ((0.0, 4096), (30.0, 12288), (60.0, 2048))),
    ("0s=1Gi", ((0.0, 1024),)),
])
def test_gpu_memory_profiles_read(value, steps) -> None:
    assert gpu_memory_steps(value) == steps


@pytest.mark.parametrize("value", ["lots", "4Gi,12Gi", "4Gi,30=12Gi", "4Gi,30s=1Gi,20s=2Gi"])
def test_bad_gpu_memory_profiles_are_refused_at_the_door(fast_api: client.CoreV1Api,
                                                         fast_ns: str, value: str) -> None:
    with pytest.raises(client.ApiException) as caught:
        fast_api.create_namespaced_pod(fast_ns, make_pod(
            "bad", {"sim.fairway.io/gpu-memory-used": value}))
    assert caught.value.status == 422
    assert "sim.fairway.io/gpu-memory-used" in caught.value.body


def test_a_reservation_pod_reports_the_memory_its_device_has_in_use(
        fast_api: client.CoreV1Api, fast_ns: str) -> None:
    fast_api.create_namespaced_pod(fast_ns, make_pod(
        "holder", gpus=1, restart_policy="Always",
        labels={"fairway.io/gpu-reservation": "true"}, node_name="a100-1"))
    holder = wait_pod(fast_api, fast_ns, "holder",
                      lambda p: "fairway.io/gpu-uuid" in annotations(p))
    uuid = annotations(holder)["fairway.io/gpu-uuid"]
    assert annotations(holder)[USED] == "0"
    for name, used in (("one", "10Gi"), ("two", "5Gi")):
        fast_api.create_namespaced_pod(fast_ns, fraction(name, uuid, used))
        bind(fast_api, fast_ns, name, "a100-1")
    wait_pod(fast_api, fast_ns, "holder", lambda p: annotations(p).get(USED) == "15360")
    fast_api.delete_namespaced_pod("one", fast_ns, grace_period_seconds=0)
    wait_pod(fast_api, fast_ns, "holder", lambda p: annotations(p).get(USED) == "5120")
    fast_api.delete_namespaced_pod("two", fast_ns, grace_period_seconds=0)
    fast_api.delete_namespaced_pod("holder", fast_ns, grace_period_seconds=0)


def events_of(api: client.CoreV1Api, ns: str, name: str, reason: str) -> list[client.CoreV1Event]:
    return [e for e in api.list_namespaced_event(ns).items
            if e.involved_object.name == name and e.reason == reason]


def test_the_node_level_scheduler_moves_a_fractions_gpu_process(
        fast_api: client.CoreV1Api, fast_ns: str) -> None:
    """lifecycle's node-level scheduler names the device a fraction's GPU process runs on and
    its memory limit there: the process restarts there once (an event, a counter), the pod and
    its containers do not, and the memory it uses follows its new limit."""
    node = "a100-1"
    home = gpu_uuid(node, 5)
    pod = fraction("burster", home, "30Gi", limit=81920, restart_policy="Always")
    pod.metadata.annotations["fairway.io/gpu-current-memory-limit-mib"] = "20480"
    fast_api.create_namespaced_pod(fast_ns, pod)
    bind(fast_api, fast_ns, "burster", node)
    # it starts under the limit it was given: 20 GiB of the 30 it wants, no restart
    started = wait_pod(fast_api, fast_ns, "burster", lambda p: annotations(p).get(USED) == "20480")
    assert "kubesim.fairway.io/gpu-process-restarts" not in annotations(started)
    fast_api.patch_namespaced_pod("burster", fast_ns, {"metadata": {"annotations": {
        "fairway.io/gpu-current-devices": "6",
        "fairway.io/gpu-current-memory-limit-mib": "81920"}}})
    moved = wait_pod(fast_api, fast_ns, "burster", lambda p: annotations(p).get(USED) == "30720")
    assert annotations(moved)["kubesim.fairway.io/gpu-process-restarts"] == "1"
    assert moved.status.container_statuses[0].restart_count == 0
    assert moved.status.container_statuses[0].state.running is not None
    [event] = events_of(fast_api, fast_ns, "burster", "GpuProcessRestarted")
    assert gpu_uuid(node, 6) in event.message and "81920 MiB" in event.message
    assert home in event.message
    # writing the same again changes nothing
    fast_api.patch_namespaced_pod("burster", fast_ns, {"metadata": {"annotations": {
        "fairway.io/gpu-current-devices": "6"}}})
    back = fast_api.read_namespaced_pod("burster", fast_ns)
    assert annotations(back)["kubesim.fairway.io/gpu-process-restarts"] == "1"
    fast_api.delete_namespaced_pod("burster", fast_ns, grace_period_seconds=0)
