"""The node-level scheduler (pure): on one node, which physical device each single-device
GPU fraction's process runs on, and how much GPU memory it may use there.

The cluster scheduler places a fraction on a device by its request (its *home* device) and
keeps counting it there. On a node whose pool has `nodeLevelSchedulerEnabled`, this decision
lets a burstable fraction (memory limit above its request) that is active and shares its home
device run on a device no one else claims, where it can use up to its limit; and it moves it
back home as soon as that device is claimed — the cluster scheduler placed a fraction there
(or is binding one), or a pod holding the whole GPU runs on it. Moving restarts the pod's GPU
process, not the pod.

On every device the requests of the pods there are guaranteed; what is left is the burst room,
given to the burstable pods in a fixed order (those at home first, then by name), so the pods
on a device may together never use more than its memory, and the same node gives the same
answer until something on it changes.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fairway_lifecycle.core.fractions import (
    ANN_DEVICES,
    ANN_MEMORY_LIMIT,
    ANN_MEMORY_REQUEST,
    mib_words,
)

Key = tuple[str, str]  # (namespace, pod name)


@dataclass(frozen=True)
class GpuDevice:
    index: int
    memory_mib: int
    # taken by something other than the node's fractions: a pod holding the whole device, or
    # a fraction on its way to it (its device reserved, not yet bound)
    claimed: bool = False


@dataclass(frozen=True)
class SharingPod:
    """A single-device fraction on the node."""

    key: Key
    home: int  # the cluster scheduler's device: where its request is counted
    current: int  # where its GPU process runs now
    request_mib: int
    limit_mib: int
    active: bool = True  # it uses the GPU now, or has not said yet (utilization not zero)

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
    claimed = {d.index for d in by_index.values() if d.claimed} | {p.home for p in pods}
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


# What lifecycle writes on a fraction pod when the node-level scheduler acts, and what the node
# (kubesim; on a real cluster the GPU interposer's node component) reports back.
ANN_CURRENT_DEVICES = "fairway.io/gpu-current-devices"  # device index its GPU process uses
ANN_CURRENT_LIMIT = "fairway.io/gpu-current-memory-limit-mib"
ANN_GPU_UTILIZATION = "kubesim.fairway.io/gpu-utilization"
ANN_PROCESS_RESTARTS = "kubesim.fairway.io/gpu-process-restarts"
MOVED_REASON = "GpuProcessMoved"
LIMITED_REASON = "GpuBurstLimited"


def _int(notes: dict[str, Any], key: str) -> int | None:
    try:
        return int(notes[key]) if notes.get(key) else None
    except ValueError:
        return None


def sharing_pod(pod: dict[str, Any]) -> SharingPod | None:
    """A bound fraction pod of one device as the decision sees it (None: a fraction of several
    devices, or one not yet annotated: the node-level scheduler leaves those be)."""
    meta = pod["metadata"]
    notes = meta.get("annotations") or {}
    try:
        devices = [int(i) for i in (notes.get(ANN_DEVICES) or "").split(",") if i]
    except ValueError:
        return None
    request, limit = _int(notes, ANN_MEMORY_REQUEST), _int(notes, ANN_MEMORY_LIMIT)
    if len(devices) != 1 or request is None:
        return None
    current = _int(notes, ANN_CURRENT_DEVICES)
    try:  # not reported yet (not started): as active, so it starts where it can burst
        active = float(notes.get(ANN_GPU_UTILIZATION) or 1) > 0
    except ValueError:
        active = True
    return SharingPod((meta.get("namespace", ""), meta["name"]), devices[0],
                      devices[0] if current is None else current, request,
                      max(request, limit or request), active)


def current_limit(pod: dict[str, Any], default: int) -> int:
    """The GPU memory limit the node-level scheduler last gave the pod (else `default`)."""
    value = _int(pod["metadata"].get("annotations") or {}, ANN_CURRENT_LIMIT)
    return default if value is None else value


def placement_annotations(placement: Placement) -> dict[str, str]:
    return {ANN_CURRENT_DEVICES: str(placement.device),
            ANN_CURRENT_LIMIT: str(placement.memory_limit_mib)}


def move_message(move: Move, node: str, placement: Placement) -> str:
    why = ("device {to} was idle: it may use up to {limit} there"
           if move.reason == "spread" else
           "device {frm} is wanted by a pod placed there: back to the device its request is "
           "counted on, with {limit}")
    return (f"GPU process moved from device {move.from_device} to device {move.to_device} of "
            f"node {node} ({move.reason}); " + why.format(
                to=move.to_device, frm=move.from_device,
                limit=f"{mib_words(placement.memory_limit_mib)} of GPU memory"))


def limit_message(before: int, placement: Placement) -> str:
    after = placement.memory_limit_mib
    why = ("another pod needs the device's memory" if after < before else
           "the device's memory is free again")
    return (f"GPU memory limit on device {placement.device} "
            f"{'lowered' if after < before else 'raised'} from {mib_words(before)} to "
            f"{mib_words(after)}: {why}; its GPU process restarts under the new limit")
