"""Foreign usage: what pods that Fairway did not place hold on each node (pure).

A pod another scheduler bound (kube-scheduler, another GPU scheduler) holds its GPUs, CPU and
memory as surely as one of Fairway's: the scheduler takes them from the node's free room so it
never books a device twice. A pod is *foreign* when it is bound to a node, has not ended, and
is none of Fairway's: not a workload's pod (`fairway.io/workload-id`), not a GPU reservation
pod, and not named for Fairway's scheduler (a third-party pod Fairway binds is counted as that
workload's, by the scheduler's own decision). A pod being deleted still holds until it is gone.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fairway_contracts.events import ForeignUsage
from fairway_contracts.quantities import cpu_millis, memory_mib
from fairway_lifecycle.core.fold import LABEL_WORKLOAD
from fairway_lifecycle.core.fractions import LABEL_RESERVATION
from fairway_lifecycle.core.pods import SCHEDULER_NAME

GPU = "nvidia.com/gpu"
# The label selector a watch of candidate pods uses: Fairway's own are left out at the source.
CANDIDATES = f"!{LABEL_WORKLOAD},!{LABEL_RESERVATION}"


@dataclass(frozen=True, slots=True)
class ForeignPod:
    node: str
    gpus: int = 0
    cpu_millis: int = 0
    memory_mib: int = 0


def _quantity(resources: Mapping[str, Any], name: str) -> Any:
    """A container's request for `name`, else its limit (Kubernetes defaults one to the other)."""
    value = (resources.get("requests") or {}).get(name)
    return value if value is not None else (resources.get("limits") or {}).get(name)


def _whole(value: Any, convert) -> int:
    try:
        return convert(value) if value is not None else 0
    except ValueError:
        return 0  # the API server would have refused it; nothing to count


def _gpus(value: Any) -> int:
    return int(str(value)) if str(value).isdigit() else 0


def pod_requests(spec: Mapping[str, Any]) -> tuple[int, int, int]:
    """What a pod's spec asks for: (GPUs, millicores, MiB). An init container runs alone
    before the others: the pod holds the larger of the two."""
    gpus = cpu = memory = 0
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        gpus += _whole(_quantity(resources, GPU), _gpus)
        cpu += _whole(_quantity(resources, "cpu"), cpu_millis)
        memory += _whole(_quantity(resources, "memory"), memory_mib)
    for container in spec.get("initContainers") or []:
        resources = container.get("resources") or {}
        gpus = max(gpus, _whole(_quantity(resources, GPU), _gpus))
        cpu = max(cpu, _whole(_quantity(resources, "cpu"), cpu_millis))
        memory = max(memory, _whole(_quantity(resources, "memory"), memory_mib))
    return gpus, cpu, memory


def foreign_pod(pod: Mapping[str, Any]) -> ForeignPod | None:
    """What the pod holds, when it is a foreign pod holding on a node; else None."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    labels = meta.get("labels") or {}
    if LABEL_WORKLOAD in labels or LABEL_RESERVATION in labels:
        return None
    if spec.get("schedulerName") == SCHEDULER_NAME or not spec.get("nodeName"):
        return None
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return None
    return ForeignPod(spec["nodeName"], *pod_requests(spec))


class ForeignPods:
    """The foreign pods seen, by namespace/name, and their sum per node."""

    def __init__(self) -> None:
        self.pods: dict[str, ForeignPod] = {}
        self.nodes: dict[str, ForeignUsage] = {}

    def put(self, kind: str, pod: Mapping[str, Any]) -> set[str]:
        """A watch event (ADDED, MODIFIED, DELETED). The nodes whose usage changed."""
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        before = self.pods.pop(key, None)
        now = None if kind == "DELETED" else foreign_pod(pod)
        if now is not None:
            self.pods[key] = now
        if before == now:
            return set()
        changed = set()
        if before is not None:
            self._add(before, -1)
            changed.add(before.node)
        if now is not None:
            self._add(now, +1)
            changed.add(now.node)
        return changed

    def usage(self, node: str) -> ForeignUsage:
        return self.nodes.get(node) or ForeignUsage()

    def _add(self, pod: ForeignPod, sign: int) -> None:
        usage = self.usage(pod.node)
        total = ForeignUsage(pods=usage.pods + sign, gpus=usage.gpus + sign * pod.gpus,
                             cpu_millis=usage.cpu_millis + sign * pod.cpu_millis,
                             memory_mib=usage.memory_mib + sign * pod.memory_mib)
        if total.pods <= 0:
            self.nodes.pop(pod.node, None)
        else:
            self.nodes[pod.node] = total
