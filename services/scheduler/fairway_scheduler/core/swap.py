"""GPU memory swap, admission (pure): on a swap-capable node of a pool with swap on, the
fractions of one device may together ask for more GPU memory than the device has.

On the node, an active fraction's memory must be on the device and an idle one's may be
swapped out to host memory (lifecycle decides, services/lifecycle/.../core/swap.py): the
fractions of an *oversubscribed* device (their requests above its memory) are kept in the
device's memory less `reserved_mib` (room for the copies), the active ones first, and the
rest is swapped out whole. Whatever is active, at least one fraction stays on the device (each
fits there alone), so the host memory such a device may need is at most its requests less
the smallest one; the node's oversubscribed devices together may need at most the pool's
`host_mib`. A device within its memory needs none. Accounting stays by request.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuSwap:
    """A pool's swap settings, in MiB."""

    host_mib: int  # cpuSwapMemorySize: host memory per node for swapped-out GPU memory
    reserved_mib: int = 0  # reservedGpuMemoryForSwapOperations: kept back on each device


def device_host_need(shares_mib: Sequence[int], device_mib: int) -> int:
    """The host memory one device's fractions (their requests, MiB) may need at most."""
    total = sum(shares_mib)
    if total <= device_mib or not shares_mib:
        return 0
    return total - min(shares_mib)


def node_host_need(devices: Iterable[Sequence[int]], device_mib: int) -> int:
    return sum(device_host_need(shares, device_mib) for shares in devices)


@dataclass(frozen=True, slots=True)
class SwapFit:
    """Where a fraction of `need_mib` may go by swapping, or why it may not: the device, and
    the node's host memory for swap left after it (None: it may not)."""

    device: int | None
    host_left_mib: int
    why: str | None = None


def swap_fit(devices: Sequence[Sequence[int] | None], device_mib: int, swap: GpuSwap,
             need_mib: int) -> SwapFit:
    """The device of one node to put a fraction of `need_mib` on by oversubscribing it: one
    that holds fractions only (None in `devices`: something else is on it: a whole-GPU pod,
    or pods of unknown size), where it fits within the device's memory less the reserve, and
    where the node's host need stays within `swap.host_mib` — the least host need first, then
    the lowest index. Devices with nothing on them are not for swapping (they fit anyway)."""
    usable = device_mib - swap.reserved_mib
    needs = [device_host_need(s, device_mib) if s else 0 for s in devices]
    now = sum(needs)
    left = swap.host_mib - now
    if need_mib > usable:
        return SwapFit(None, left, f"needs {need_mib} MiB on a device; a device keeps "
                                   f"{swap.reserved_mib} MiB of its {device_mib} MiB for "
                                   f"swapping, so at most {usable} MiB can be swapped in")
    best: tuple[int, int] | None = None
    for d, shares in enumerate(devices):
        if not shares:
            continue
        after = device_host_need([*shares, need_mib], device_mib)
        if now - needs[d] + after <= swap.host_mib and (best is None or after - needs[d] <
                                                         best[0]):
            best = (after - needs[d], d)
    if best is None:
        return SwapFit(None, left)
    return SwapFit(best[1], left - best[0])


def short_message(need_mib: int, node: str, left_mib: int, host_mib: int) -> str:
    """Why a fraction found no room even by swapping, with the numbers."""
    return (f"needs {need_mib} MiB on a device; node {node} has {max(0, left_mib)} MiB of "
            f"swap host memory left of {host_mib} MiB")
