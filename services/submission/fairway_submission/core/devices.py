"""A GPU node's devices as the API shows them (pure): from the pods the workload view places on
the node, which pods each device counts (the cluster scheduler's device, by request) and which
run on it now (the node-level scheduler may run a fraction's GPU process elsewhere), and the
GPU memory requested, allowed, in use and swapped out per device (GPU memory swap), and the
utilization of a device as the sum of what its fractions get."""

from collections.abc import Iterable
from typing import Any

Pod = dict[str, Any]  # a pod summary (camelCase) with the workload's id and name added


def _memory_request(pod: Pod, device_memory_mib: int | None) -> int | None:
    if pod.get("gpuPortion") is None:
        return device_memory_mib if pod.get("gpus") else None  # a whole device
    return int(pod["gpuPortion"] * device_memory_mib) if device_memory_mib else None


def _utilization(pod: Pod) -> float | None:
    """What a fraction's GPU process gets of its device now (percent), as the node reports
    it; a whole-GPU pod's is not added up per device."""
    value = pod.get("gpuUtilizationPercent")
    return value if pod.get("gpuPortion") is not None and value is not None else None


def device_views(gpus: int, device_memory_mib: int | None, pods: Iterable[Pod],
                 uuids: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One entry per device index: `pods` counted there or running there, and the sums."""
    devices = [{"index": i, "memoryMib": device_memory_mib, "pods": [],
                "memoryRequestedMib": 0, "memoryInUseMib": 0, "memorySwappedMib": 0,
                "utilizationPercent": None} for i in range(gpus)]
    for pod in sorted(pods, key=lambda p: p["name"]):
        counted = [i for i in pod.get("gpuDevices") or [] if 0 <= i < gpus]
        running = [i for i in pod.get("gpuCurrentDevices") or counted if 0 <= i < gpus]
        request = _memory_request(pod, device_memory_mib)
        used = pod.get("gpuMemoryUsedMib")
        swapped = pod.get("gpuSwappedMib")
        utilization = _utilization(pod)
        for i in sorted(set(counted) | set(running)):
            device = devices[i]
            device["pods"].append({
                "name": pod["name"], "workloadId": pod.get("workloadId"),
                "workloadName": pod.get("workloadName"), "phase": pod.get("phase"),
                "gpuPortion": pod.get("gpuPortion"), "countedHere": i in counted,
                "runsHere": i in running, "memoryRequestMib": request,
                "memoryLimitMib": pod.get("gpuCurrentMemoryLimitMib")
                or pod.get("gpuMemoryLimitMib") or request,
                "memoryUsedMib": used if i in running else None,
                "memorySwappedMib": swapped if i in running else None,
                "gpuActive": pod.get("gpuActive") if i in running else None,
                "gpuProcessRestarts": pod.get("gpuProcessRestarts")})
            if i in counted and request:
                device["memoryRequestedMib"] += request
            if i in running and used:
                device["memoryInUseMib"] += used
            if i in running and swapped:
                device["memorySwappedMib"] += swapped
            if i in running and utilization is not None:
                device["utilizationPercent"] = (device["utilizationPercent"] or 0) + utilization
    return devices
