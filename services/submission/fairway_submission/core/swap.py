"""A node pool's GPU memory swap settings, checked at the door (pure): swap needs host memory
to swap to, and the device memory kept for swapping must leave room on every GPU of the pool."""

from collections.abc import Iterable, Mapping
from typing import Any

from fairway_contracts.quantities import memory_mib

FIELD = "gpuResourceOptimization"


def swap_problems(optimization: Mapping[str, Any],
                  devices: Iterable[tuple[str, int]]) -> list[tuple[str, str]]:
    """(field, reason) for each problem; `devices`: (node, GPU memory MiB) of the pool's
    nodes that report it."""
    problems = []
    host = optimization.get("cpuSwapMemorySize")
    reserved = optimization.get("reservedGpuMemoryForSwapOperations")
    if optimization.get("swapEnabled") and not memory_mib(host):
        problems.append((f"{FIELD}.cpuSwapMemorySize",
                         "swapEnabled needs host memory to swap GPU memory to: give a size "
                         "above zero (e.g. 100Gi)"))
    reserved_mib = memory_mib(reserved)
    if reserved_mib:
        smallest = min(devices, key=lambda d: (d[1], d[0]), default=None)
        if smallest is not None and reserved_mib >= smallest[1]:
            problems.append((f"{FIELD}.reservedGpuMemoryForSwapOperations",
                             f"{reserved} ({reserved_mib} MiB) must be smaller than the GPU "
                             f"memory of every device in the pool; node {smallest[0]}'s "
                             f"devices have {smallest[1]} MiB"))
    return problems
