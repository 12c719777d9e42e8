"""GPU fractions on the node, pure: the fraction pod's annotations and environment, the
reservation pod, and who gives back borrowed GPU memory."""

import pytest

from fairway_contracts import EffectiveSpec, PodRole, WorkloadType
from fairway_contracts.workloads import Compute
from fairway_lifecycle.core.fractions import (
    Sharer,
    claimed_devices,
    fraction_annotations,
    reclaim_victims,
    reservation_name,
    reservation_of,
    reservation_pod,
    shared_devices,
)
from fairway_lifecycle.core.pods import build_pods

A100 = 81920


def portion(request: float, limit: float | None = None, devices: int = 1) -> Compute:
    return Compute(gpu_request_type="portion", gpu_portion_request=request,
                   gpu_portion_limit=limit, gpu_devices_request=devices)


def memory(request: str, limit: str | None = None) -> Compute:
    return Compute(gpu_request_type="memory", gpu_memory_request=request,
                   gpu_memory_limit=limit, gpu_devices_request=1)


@pytest.mark.parametrize(("compute", "expected"), [
    (portion(0.5), {"fairway.io/gpu-portion": "0.5", "fairway.io/gpu-memory-request-mib":
                    "40960", "fairway.io/gpu-memory-limit-mib": "40960",
                    "fairway.io/cuda-device-memory-limit": "40960m",
                    "fairway.io/cuda-device-sm-limit": "50"}),
    (portion(0.25, 0.75), {"fairway.io/gpu-portion": "0.25",
                           "fairway.io/gpu-memory-request-mib": "20480",
                           "fairway.io/gpu-memory-limit-mib": "61440",
                           "fairway.io/cuda-device-memory-limit": "61440m",
                           "fairway.io/cuda-device-sm-limit": "75"}),
    (memory("20Gi"), {"fairway.io/gpu-portion": "0.25",
                      "fairway.io/gpu-memory-request-mib": "20480",
                      "fairway.io/gpu-memory-limit-mib": "20480",
                      "fairway.io/cuda-device-memory-limit": "20480m",
                      "fairway.io/cuda-device-sm-limit": "25"}),
    (memory("20Gi", "40Gi"), {"fairway.io/gpu-portion": "0.25",
                              "fairway.io/gpu-memory-limit-mib": "40960",
                              "fairway.io/cuda-device-sm-limit": "50"}),
])
def test_fraction_annotations(compute, expected):
    got = fraction_annotations(compute, [3], ["GPU-x"], A100)
    assert got["fairway.io/gpu-devices"] == "3" and got["fairway.io/gpu-uuids"] == "GPU-x"
    assert {k: got[k] for k in expected} == expected


def test_a_fraction_pod_holds_no_device_and_reads_its_device_from_its_annotations():
    spec = EffectiveSpec(image="busybox", priority_class="train", preemptible=True,
                         backoff_limit=0, compute=portion(0.5, devices=2))
    [pod] = build_pods(workload_id="w1", name="nb", project="p", workload_type=(
        WorkloadType.TRAINING), spec=spec, attempt=1, namespace="fairway-p")
    container = pod["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert pod["metadata"]["labels"]["fairway.io/gpu-fraction"] == "true"
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "metadata.annotations['fairway.io/gpu-uuids']"
    assert env["CUDA_DEVICE_MEMORY_LIMIT_0"] == env["CUDA_DEVICE_MEMORY_LIMIT_1"] == (
        "metadata.annotations['fairway.io/cuda-device-memory-limit']")
    assert "CUDA_DEVICE_MEMORY_LIMIT_2" not in env
    assert env["CUDA_DEVICE_SM_LIMIT"] == "metadata.annotations['fairway.io/cuda-device-sm-limit']"
    assert PodRole.MAIN.value == pod["metadata"]["labels"]["fairway.io/role"]


@pytest.mark.parametrize(("node", "index", "name"), [
    ("a100-1", 3, "gpu-reservation-a100-1-3"),
    ("Node.With.Dots", 0, None),
    ("n" * 80, 12, None),
])
def test_reservation_names_are_dns_names_of_at_most_63(node, index, name):
    got = reservation_name(node, index)
    assert len(got) <= 63 and got.replace("-", "").isalnum() and got == got.lower()
    assert got.endswith(f"-{index}")
    if name:
        assert got == name
    assert reservation_name(node, index) == got != reservation_name(node + "x", index)


def test_the_reservation_pod_holds_one_whole_device_of_its_node():
    pod = reservation_pod("a100-1", 3, "fairway:latest")
    assert pod["metadata"]["namespace"] == "fairway-reservation"
    assert pod["spec"]["nodeName"] == "a100-1"
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert reservation_of(pod) == (("a100-1", 3), None)
    pod["metadata"]["annotations"]["fairway.io/gpu-uuid"] = "GPU-1"
    assert reservation_of(pod) == (("a100-1", 3), "GPU-1")


def test_shared_devices_are_those_of_bound_unfinished_fractions():
    pod = {"metadata": {"name": "f", "labels": {"fairway.io/gpu-fraction": "true"},
                        "annotations": {"fairway.io/gpu-devices": "1,2"}},
           "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert shared_devices(pod) == [("n1", 1), ("n1", 2)]
    pod["status"]["phase"] = "Failed"
    assert shared_devices(pod) == []


def test_an_unbound_fraction_with_its_node_written_claims_its_devices():
    pod = {"metadata": {"name": "f", "labels": {"fairway.io/gpu-fraction": "true"},
                        "annotations": {"fairway.io/gpu-devices": "0",
                                        "fairway.io/bind-node": "n1"}},
           "spec": {}, "status": {"phase": "Pending"}}
    assert claimed_devices(pod) == [("n1", 0)]
    assert shared_devices(pod) == []  # not bound yet: it shares nothing
    pod["spec"]["nodeName"] = "n1"  # bound: it shares the device, it no longer claims it
    assert claimed_devices(pod) == [] and shared_devices(pod) == [("n1", 0)]
    del pod["spec"]["nodeName"]
    pod["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    assert claimed_devices(pod) == []
    plain = {"metadata": {"name": "p", "annotations": {"fairway.io/bind-node": "n1",
                                                       "fairway.io/gpu-devices": "0"}},
             "spec": {}, "status": {}}
    assert claimed_devices(plain) == []  # not a fraction


def s(name: str, request: int, used: int | None) -> Sharer:
    return Sharer("ns", name, request, used)


@pytest.mark.parametrize(("sharers", "wanted", "victims"), [
    # fits in what is free: nobody
    ([s("a", 20480, 20480)], 40960, []),
    # a borrowed 30 GiB must go for a 40 GiB request on an 80 GiB device
    ([s("a", 20480, 51200)], 40960, ["a"]),
    # the largest borrower first, and no more than needed
    ([s("a", 10240, 30720), s("b", 10240, 20480)], 40960, ["a"]),
    ([s("a", 10240, 30720), s("b", 10240, 30720), s("c", 10240, 10240)], 51200, ["a", "b"]),
    # within their requests: nothing to take back (the scheduler would not have placed it)
    ([s("a", 40960, 40960), s("b", 40960, 40960)], 10240, []),
    # memory not reported counts as the request
    ([s("a", 40960, None), s("b", 20480, 40960)], 20480, ["b"]),
])
def test_who_gives_back_borrowed_gpu_memory(sharers, wanted, victims):
    assert [v.name for v in reclaim_victims(A100, sharers, wanted)] == victims
