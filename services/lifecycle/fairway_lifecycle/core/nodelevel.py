"""The node-level scheduler (pure): on one node, which physical device each single-device
GPU fraction's process runs on, and how much GPU memory it may use there.

The cluster scheduler places a fraction on a device by its request (its *home* device) and
keeps counting it there. On a node whose pool has `nodeLevelSchedulerEnabled`, this decision
lets a burstable fraction (memory limit above its request) that is active and shares its home
device run on a device no one else claims, where it can use up to its limit; and it moves it
back home as soon as that device is claimed — the cluster scheduler placed a fraction there,
or a pod holding the whole GPU runs on it. Moving restarts the pod's GPU process, not the pod.

On every device the requests of the pods there are guaranteed; what is left is the burst room,
given to the burstable pods in a fixed order (those at home first, then by name), so the pods
on a device may together never use more than its memory, and the same node gives the same
answer until something on it changes.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Key = tuple[str, str]  # (namespace, pod name)


@dataclass(frozen=True)
class GpuDevice:
    index: int
    memory_mib: int
    whole: bool = False  # a pod that holds the whole device (through the device plugin) runs


@dataclass(frozen=True)
class SharingPod:
    """A single-device fraction on the node."""

    key: Key
    home: int  # the cluster scheduler's device: where its request is counted
    current: int  # where its GPU process runs now
    request_mib: int
    limit_mib: int
    active: bool = True  # it uses the GPU now (utilization above zero)

    @property
    def burstable(self) -> bool:
        return self.limit_mib > self.request_mib


@dataclass(frozen=True)
class Placement:
    device: int
    memory_limit_mib: int  # what its GPU process may use there: its request, up to its limit


@dataclass(frozen=True)
class Move:
    key: Key
    from_device: int
    to_device: int
    reason: Literal["spread", "consolidate"]


def place(devices: Iterable[GpuDevice], pods: Iterable[SharingPod]) -> dict[Key, Placement]:
    """Every pod's device and memory limit (see the module's docstring)."""
    by_index = {d.index: d for d in devices}
    pods = sorted(pods, key=lambda p: p.key)
    claimed = {d.index for d in by_index.values() if d.whole} | {p.home for p in pods}
    where: dict[Key, int] = {}
    # Visitors stay where they are while their device is unclaimed and they fit there (the
    # first by name keeps it); the others go home.
    visitors: dict[int, Key] = {}
    for p in pods:
        stays = (p.current != p.home and p.current in by_index and p.current not in claimed
                 and p.current not in visitors
                 and p.limit_mib <= by_index[p.current].memory_mib)
        if stays:
            visitors[p.current] = p.key
        where[p.key] = p.current if stays else p.home
    # Spread: an active burstable pod that shares its device goes to an unclaimed device with
    # nobody on it (the lowest index first): the highest limit first, and of equals the last
    # by name (the first stays home).
    free = sorted(i for i in by_index if i not in claimed and i not in visitors)
    candidates = sorted(sorted((p for p in pods if where[p.key] == p.home and p.burstable
                                and p.active and p.home in by_index),
                               key=lambda p: p.key, reverse=True),
                        key=lambda p: -p.limit_mib)
    for p in candidates:
        sharing = sum(1 for q in pods if where[q.key] == p.home)
        if sharing < 2:
            continue  # alone on its device already
        target = next((i for i in free if p.limit_mib <= by_index[i].memory_mib), None)
        if target is None:
            break
        free.remove(target)
        where[p.key] = target
    return {p.key: Placement(where[p.key], _limit(p, pods, where, by_index)) for p in pods}


def _limit(pod: SharingPod, pods: list[SharingPod], where: dict[Key, int],
           by_index: dict[int, GpuDevice]) -> int:
    """The pod's request plus its share of its device's burst room."""
    device = by_index.get(where[pod.key])
    if device is None:
        return pod.request_mib
    there = [p for p in pods if where[p.key] == device.index]
    room = device.memory_mib - sum(p.request_mib for p in there)
    for p in sorted(there, key=lambda p: (p.home != device.index, p.key)):
        granted = max(0, min(p.limit_mib - p.request_mib, room))
        if p.key == pod.key:
            return p.request_mib + granted
        room -= granted
    return pod.request_mib


def moves(pods: Iterable[SharingPod], placements: dict[Key, Placement]) -> list[Move]:
    """The pods whose GPU process changes device, and why."""
    out = []
    for p in sorted(pods, key=lambda p: p.key):
        target = placements[p.key].device
        if target != p.current:
            out.append(Move(p.key, p.current, target,
                            "spread" if target != p.home else "consolidate"))
    return out
