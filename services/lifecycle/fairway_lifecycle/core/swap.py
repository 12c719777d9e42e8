"""GPU memory swap on the node (pure): which fractions' GPU memory is swapped out to host
memory, per device.

On a swap-capable node of a pool with swap on, the cluster scheduler may place fractions whose
requests together exceed a device's memory (services/scheduler/.../core/swap.py admits them
within the pool's host memory). Such an *oversubscribed* device keeps in its memory, less the
reserve kept for the copies, the active fractions first and then idle ones while they fit;
every other fraction is swapped out whole. A device within its memory swaps nothing. Fractions
already in memory go first among equals, so the answer only changes when activity or the pods
change (no swapping back and forth). What is swapped is counted by request, as the scheduler
counts it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fairway_lifecycle.core.fractions import mib_words

Key = tuple[str, str]  # (namespace, pod name)

# What lifecycle writes on a fraction pod: how much of its GPU memory is swapped out (0: none),
# and what the node reports back (kubesim; on a real cluster the swap agent of the GPU
# interposer): whether its GPU process wants the GPU now, and what is in host memory now.
ANN_SWAPPED = "fairway.io/gpu-swapped-mib"
ANN_ACTIVE = "kubesim.fairway.io/gpu-active"
ANN_NODE_SWAPPED = "kubesim.fairway.io/gpu-swapped-mib"
SWAPPED_OUT_REASON = "GpuMemorySwappedOut"
SWAPPED_IN_REASON = "GpuMemorySwappedIn"


@dataclass(frozen=True)
class SwapPod:
    key: Key
    device: int  # where its GPU process runs
    request_mib: int
    active: bool
    swapped_mib: int = 0  # swapped out now (as last decided)


def swapped(device_mib: int, reserved_mib: int, pods: Iterable[SwapPod]) -> dict[Key, int]:
    """Every pod's GPU memory to be swapped out (MiB; 0: in device memory)."""
    by_device: dict[int, list[SwapPod]] = {}
    for p in pods:
        by_device.setdefault(p.device, []).append(p)
    out: dict[Key, int] = {}
    for there in by_device.values():
        if sum(p.request_mib for p in there) <= device_mib:
            out.update((p.key, 0) for p in there)
            continue
        room = device_mib - reserved_mib
        for p in sorted(there, key=lambda p: (not p.active, p.swapped_mib > 0, p.key)):
            if p.request_mib <= room:
                room -= p.request_mib
                out[p.key] = 0
            else:
                out[p.key] = p.request_mib
    return out


@dataclass(frozen=True)
class SwapChange:
    key: Key
    direction: Literal["out", "in"]
    mib: int


def changes(pods: Iterable[SwapPod], decided: dict[Key, int]) -> list[SwapChange]:
    """The pods whose memory moves, and which way."""
    out = []
    for p in sorted(pods, key=lambda p: p.key):
        after = decided.get(p.key, 0)
        if after and not p.swapped_mib:
            out.append(SwapChange(p.key, "out", after))
        elif p.swapped_mib and not after:
            out.append(SwapChange(p.key, "in", p.swapped_mib))
    return out


def host_used_mib(decided: dict[Key, int]) -> int:
    return sum(decided.values())


def swap_pod(pod: dict[str, Any], device: int, request_mib: int) -> SwapPod:
    """A fraction as the decision sees it: active when its node says its GPU process wants
    the GPU (else, when it says nothing yet, when its utilization is not zero)."""
    meta = pod["metadata"]
    notes = meta.get("annotations") or {}
    said = notes.get(ANN_ACTIVE)
    if said in ("true", "false"):
        active = said == "true"
    else:
        try:
            active = float(notes.get("kubesim.fairway.io/gpu-utilization") or 1) > 0
        except ValueError:
            active = True
    try:
        now = int(notes.get(ANN_SWAPPED) or 0)
    except ValueError:
        now = 0
    return SwapPod((meta.get("namespace", ""), meta["name"]), device, request_mib, active, now)


def change_message(change: SwapChange, node: str, device: int) -> str:
    if change.direction == "out":
        return (f"{mib_words(change.mib)} of GPU memory swapped out from device {device} to "
                f"the host memory of node {node}: it is idle and the device's memory is wanted "
                "by active workloads")
    return (f"{mib_words(change.mib)} of GPU memory swapped back in to device {device} of node "
            f"{node}: it is active again and the device has room")
