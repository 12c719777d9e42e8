"""GPU fractions on the node (pure): what a fraction pod carries, the reservation pod that holds
each shared device, and which pods give back borrowed GPU memory.

A fraction pod requests no `nvidia.com/gpu`: a reservation pod per shared device (one whole
`nvidia.com/gpu`, bound straight to the node) makes every other scheduler see the device as
taken, and reports which physical device the device plugin gave it. Before lifecycle binds a
fraction pod it writes the device's UUID, the pod's portion and its GPU memory limit into the
pod's annotations; the container's environment takes them through the downward API (resolved
when the container starts, after the bind), in the variables the NVIDIA container toolkit
(`NVIDIA_VISIBLE_DEVICES`) and the HAMi-core CUDA interposer (`CUDA_DEVICE_MEMORY_LIMIT_<i>`,
`CUDA_DEVICE_SM_LIMIT`) read.
"""

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fairway_contracts.workloads import Compute

Pod = dict[str, Any]

LABEL_FRACTION = "fairway.io/gpu-fraction"
ANN_DEVICES = "fairway.io/gpu-devices"  # the scheduler's device indices on the node
ANN_UUIDS = "fairway.io/gpu-uuids"  # those devices' UUIDs, from their reservation pods
ANN_PORTION = "fairway.io/gpu-portion"
ANN_MEMORY_REQUEST = "fairway.io/gpu-memory-request-mib"
ANN_MEMORY_LIMIT = "fairway.io/gpu-memory-limit-mib"
ANN_CUDA_MEMORY = "fairway.io/cuda-device-memory-limit"  # HAMi-core's format: "40960m"
ANN_CUDA_SM = "fairway.io/cuda-device-sm-limit"  # percent of the device's compute
ANN_RECLAIMED = "fairway.io/gpu-memory-reclaimed"  # why the pod was killed, for the fold
# the node a fraction pod is to be bound to once its devices are reserved (a restart of
# lifecycle between the decision and the bind finds it here)
ANN_BIND_NODE = "fairway.io/bind-node"
# GPU memory a running pod uses (MiB), as the node reports it: kubesim writes it; on a real
# cluster a node agent does (docs/operations.md, "GPU fractions").
ANN_MEMORY_USED = "kubesim.fairway.io/gpu-memory-used-mib"
ANN_DEVICE_PLUGIN_UUIDS = "kubesim.fairway.io/gpu-uuids"

RESERVATION_NAMESPACE = "fairway-reservation"
LABEL_RESERVATION = "fairway.io/gpu-reservation"
LABEL_NODE = "fairway.io/node"
LABEL_INDEX = "fairway.io/gpu-index"
ANN_RESERVED_UUID = "fairway.io/gpu-uuid"  # written by the reservation pod's program
RECLAIMED_REASON = "GpuMemoryReclaimed"
GPU_OOM_REASON = "GpuOutOfMemory"

_DNS = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Device = tuple[str, int]  # (node, the scheduler's device index)


def fraction_env(devices: int) -> list[dict[str, Any]]:
    """The fraction container's environment, from its annotations (downward API)."""

    def field(key: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": f"metadata.annotations['{key}']"}}

    env = [{"name": "NVIDIA_VISIBLE_DEVICES", "valueFrom": field(ANN_UUIDS)}]
    env += [{"name": f"CUDA_DEVICE_MEMORY_LIMIT_{i}", "valueFrom": field(ANN_CUDA_MEMORY)}
            for i in range(devices)]
    env.append({"name": "CUDA_DEVICE_SM_LIMIT", "valueFrom": field(ANN_CUDA_SM)})
    return env


def portion_of(compute: Compute, device_memory_mib: int | None) -> float | None:
    """The portion of each device a fraction takes on a node with this GPU memory."""
    if compute.gpu_request_type == "portion":
        return compute.gpu_portion_request
    wanted = compute.gpu_memory_request_mib()
    if wanted and device_memory_mib:
        return min(1.0, wanted / device_memory_mib)
    return None


def memory_request_mib(compute: Compute, device_memory_mib: int | None) -> int | None:
    if compute.gpu_request_type == "memory":
        return compute.gpu_memory_request_mib()
    if compute.gpu_portion_request is not None and device_memory_mib:
        return int(compute.gpu_portion_request * device_memory_mib)
    return None


def memory_limit_mib(compute: Compute, device_memory_mib: int | None) -> int | None:
    """The GPU memory the pod may use on each device: its limit (a dynamic fraction), else its
    request."""
    if compute.gpu_request_type == "memory":
        return compute.gpu_memory_limit_mib() or compute.gpu_memory_request_mib()
    limit = compute.gpu_portion_limit or compute.gpu_portion_request
    if limit is not None and device_memory_mib:
        return int(limit * device_memory_mib)
    return None


def fraction_annotations(compute: Compute, devices: Iterable[int], uuids: Iterable[str],
                         device_memory_mib: int | None) -> dict[str, str]:
    """What lifecycle writes on a fraction pod before it binds it."""
    portion = portion_of(compute, device_memory_mib)
    limit = memory_limit_mib(compute, device_memory_mib)
    request = memory_request_mib(compute, device_memory_mib)
    sm_portion = (compute.gpu_portion_limit or compute.gpu_portion_request
                  if compute.gpu_request_type == "portion" else
                  (limit / device_memory_mib if limit and device_memory_mib else portion))
    out = {ANN_DEVICES: ",".join(map(str, devices)), ANN_UUIDS: ",".join(uuids),
           ANN_CUDA_SM: str(max(1, min(100, round(100 * (sm_portion or 1)))))}
    if portion is not None:
        out[ANN_PORTION] = f"{portion:.4g}"
    if request is not None:
        out[ANN_MEMORY_REQUEST] = str(request)
    if limit is not None:
        out[ANN_MEMORY_LIMIT] = str(limit)
        out[ANN_CUDA_MEMORY] = f"{limit}m"
    return out


def reservation_name(node: str, index: int) -> str:
    """`gpu-reservation-<node>-<index>`, a DNS-1123 name of at most 63 characters (a long or
    odd node name is cut and given 6 characters of its hash)."""
    base = _DNS.sub("-", node.lower()).strip("-")
    suffix = f"-{index}"
    room = 63 - len("gpu-reservation-") - len(suffix)
    if base != node or len(base) > room:
        digest = hashlib.sha1(node.encode()).hexdigest()[:6]
        base = f"{base[:room - 7].strip('-')}-{digest}".strip("-")
    return f"gpu-reservation-{base}{suffix}"


def _label_value(value: str) -> str:
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    return hashlib.sha1(value.encode()).hexdigest()[:40]


def reservation_pod(node: str, index: int, image: str,
                    namespace: str = RESERVATION_NAMESPACE) -> Pod:
    """The pod that holds one shared device of `node`: one whole `nvidia.com/gpu`, bound to
    the node at creation; its program reports the device's UUID."""
    env = [{"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
           for name, path in (("POD_NAME", "metadata.name"),
                              ("POD_NAMESPACE", "metadata.namespace"))]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": reservation_name(node, index), "namespace": namespace,
                     "labels": {LABEL_RESERVATION: "true", LABEL_NODE: _label_value(node),
                                LABEL_INDEX: str(index)},
                     "annotations": {"fairway.io/node-name": node}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 0,
            "serviceAccountName": "fairway-reservation",
            # Pod Security "restricted", as every Fairway pod (Fairway's image runs as 10001)
            "securityContext": {"runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "reservation", "image": image,
                "command": ["python", "-m", "fairway_lifecycle.reservation"],
                "env": env,
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"nvidia.com/gpu": "1", "cpu": "10m",
                                           "memory": "64Mi"},
                              "limits": {"nvidia.com/gpu": "1", "cpu": "100m",
                                         "memory": "128Mi"}},
            }],
        },
    }


def reservation_of(pod: Pod) -> tuple[Device, str | None] | None:
    """A reservation pod's device and the UUID it reported (None: not yet)."""
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    if labels.get(LABEL_RESERVATION) != "true":
        return None
    node = (meta.get("annotations") or {}).get("fairway.io/node-name") or \
        pod.get("spec", {}).get("nodeName")
    try:
        index = int(labels.get(LABEL_INDEX, ""))
    except ValueError:
        return None
    if not node:
        return None
    return (node, index), (meta.get("annotations") or {}).get(ANN_RESERVED_UUID)


def bind_in_flight(pod: Pod) -> tuple[str, list[int]] | None:
    """(node, devices) of a fraction pod whose bind was under way: its node and devices are
    written on it and it is not bound (nor going); None for any other pod."""
    meta = pod["metadata"]
    notes = meta.get("annotations") or {}
    if (pod.get("spec", {}).get("nodeName") or meta.get("deletionTimestamp")
            or not notes.get(ANN_BIND_NODE) or not notes.get(ANN_DEVICES)):
        return None
    try:
        return notes[ANN_BIND_NODE], [int(i) for i in notes[ANN_DEVICES].split(",") if i]
    except ValueError:
        return None


def _done(pod: Pod) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def shared_devices(pod: Pod) -> list[Device]:
    """The devices a bound, unfinished fraction pod shares (none for any other pod)."""
    meta = pod["metadata"]
    if (meta.get("labels") or {}).get(LABEL_FRACTION) != "true" or _done(pod):
        return []
    node = pod.get("spec", {}).get("nodeName")
    devices = (meta.get("annotations") or {}).get(ANN_DEVICES)
    if not node or not devices:
        return []
    try:
        return [(node, int(i)) for i in devices.split(",") if i]
    except ValueError:
        return []


def claimed_devices(pod: Pod) -> list[Device]:
    """The devices an unbound fraction pod is on its way to: its bind waits for their
    reservations, and its node and devices are written on it (`ANN_BIND_NODE`). Every
    lifecycle replica sees the pod, so none releases those reservations meanwhile, whichever
    replica binds it."""
    meta = pod["metadata"]
    notes = meta.get("annotations") or {}
    if ((meta.get("labels") or {}).get(LABEL_FRACTION) != "true" or _done(pod)
            or meta.get("deletionTimestamp") or pod.get("spec", {}).get("nodeName")):
        return []
    node, devices = notes.get(ANN_BIND_NODE), notes.get(ANN_DEVICES)
    if not node or not devices:
        return []
    try:
        return [(node, int(i)) for i in devices.split(",") if i]
    except ValueError:
        return []


@dataclass(frozen=True)
class Sharer:
    """A fraction pod on a device: its GPU memory request and what it uses now (MiB)."""

    namespace: str
    name: str
    request_mib: int
    used_mib: int | None = None

    @property
    def holds_mib(self) -> int:
        return max(self.request_mib, self.used_mib or 0)

    @property
    def borrowed_mib(self) -> int:
        return max(0, (self.used_mib or 0) - self.request_mib)


def sharer(pod: Pod) -> Sharer:
    meta = pod["metadata"]
    notes = meta.get("annotations") or {}

    def mib(key: str) -> int | None:
        try:
            return int(notes[key]) if key in notes else None
        except ValueError:
            return None

    return Sharer(meta.get("namespace", ""), meta["name"], mib(ANN_MEMORY_REQUEST) or 0,
                  mib(ANN_MEMORY_USED))


def reclaim_victims(device_memory_mib: int, sharers: Iterable[Sharer], wanted_mib: int
                    ) -> list[Sharer]:
    """The pods that give back the GPU memory they borrowed above their request so that a new
    fraction asking for `wanted_mib` fits on the device: none when it fits already; the largest
    borrowers first, as few as will do. Requests are guaranteed: only what was borrowed can
    be taken back, so if even all of it would not do, no one is killed."""
    sharers = list(sharers)
    free = device_memory_mib - sum(s.holds_mib for s in sharers)
    if free >= wanted_mib:
        return []
    borrowers = sorted((s for s in sharers if s.borrowed_mib > 0),
                       key=lambda s: (-s.borrowed_mib, s.namespace, s.name))
    victims = []
    for s in borrowers:
        victims.append(s)
        free += s.borrowed_mib
        if free >= wanted_mib:
            return victims
    return []


def mib_words(mib: int) -> str:
    """10240 -> "10 GiB", 1536 -> "1.5 GiB", 500 -> "500 MiB"."""
    if mib >= 1024:
        return f"{mib / 1024:.3g} GiB"
    return f"{mib} MiB"


def reclaimed_message(victim: Sharer, by: str) -> str:
    return (f"GPU memory above its request of {mib_words(victim.request_mib)} was reclaimed "
            f"for {by} (it used {mib_words(victim.used_mib or 0)})")
