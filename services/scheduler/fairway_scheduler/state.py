"""The scheduler's state in memory, and how events become state.

`ClusterState` mirrors the committed tables: the shell changes it only after the transaction
that wrote the same change has committed, so a crash at any point leaves the tables right and a
restart loads them back. Pure bookkeeping: no I/O, no asyncio.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fairway_contracts.events import PodGroupChanged, WorkloadSubmitted
from fairway_contracts.workloads import Phase
from fairway_scheduler import core
from fairway_scheduler.priorities import priority_value

# Kubernetes pod phases after which a pod holds nothing and waits for nothing.
FINISHED_POD_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class WorkloadRequest:
    """What a submitted workload asks of the scheduler."""

    id: str
    project: str
    priority_class: str
    priority: int
    preemptible: bool
    node_pools: tuple[str, ...]
    pods: int
    min_pods: int
    gpus_per_pod: int
    submitted_at: datetime
    trace_headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: WorkloadSubmitted, trace_headers: Mapping[str, str]
                   ) -> "WorkloadRequest":
        spec = event.spec
        return cls(
            id=event.workload_id,
            project=event.project,
            priority_class=spec.priority_class,
            priority=priority_value(spec.priority_class),
            preemptible=spec.preemptible,
            node_pools=tuple(spec.node_pools),
            pods=spec.pods,
            min_pods=min(spec.min_pods, spec.pods),
            gpus_per_pod=spec.compute.gpu_devices_request,
            submitted_at=event.created_at,
            trace_headers=dict(trace_headers),
        )


@dataclass(frozen=True, slots=True)
class PodStatus:
    name: str
    node: str | None = None
    phase: str = "Pending"
    gpus: int = 0

    @property
    def holds_resources(self) -> bool:
        return self.phase not in FINISHED_POD_PHASES

    @property
    def waits_for_node(self) -> bool:
        return self.node is None and self.holds_resources


@dataclass(frozen=True, slots=True)
class WorkloadStatus:
    """A workload's phase and pods as its last applied pod-group event reports them."""

    workload_id: str
    project: str
    sequence: int
    phase: Phase
    pods: tuple[PodStatus, ...] = ()
    trace_headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.phase.terminal

    def pods_holding(self) -> frozenset[str]:
        """Pods that keep their allocation: listed, not finished, in a workload not over."""
        if self.finished:
            return frozenset()
        return frozenset(pod.name for pod in self.pods if pod.holds_resources)

    @classmethod
    def from_event(cls, event: PodGroupChanged, trace_headers: Mapping[str, str]
                   ) -> "WorkloadStatus":
        return cls(
            workload_id=event.workload_id,
            project=event.project,
            sequence=event.sequence,
            phase=event.phase,
            pods=tuple(PodStatus(name=p.name, node=p.node, phase=p.phase, gpus=p.gpus)
                       for p in event.pods),
            trace_headers=dict(trace_headers),
        )


class ClusterState:
    def __init__(self) -> None:
        self.nodes: dict[str, core.Node] = {}
        self.requests: dict[str, WorkloadRequest] = {}
        self.statuses: dict[str, WorkloadStatus] = {}
        self.allocations: dict[tuple[str, str], core.Allocation] = {}
        self.pending: dict[str, core.PendingReason] = {}
        # Grows with every change a cycle could care about; a cycle over an unchanged state
        # would decide nothing new.
        self.version = 0

    # changes ----------------------------------------------------------------------------
    def put_node(self, node: core.Node) -> None:
        self.nodes[node.name] = node
        self.version += 1

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        self.version += 1

    def add_request(self, request: WorkloadRequest) -> None:
        self.requests[request.id] = request
        self.version += 1

    def apply_status(self, status: WorkloadStatus, released: Iterable[str]) -> None:
        for pod in released:
            self.allocations.pop((status.workload_id, pod), None)
        if status.finished:
            # Over: nothing more to place, nothing held; the tables keep the record.
            self.requests.pop(status.workload_id, None)
            self.statuses.pop(status.workload_id, None)
            self.pending.pop(status.workload_id, None)
            for key in [k for k in self.allocations if k[0] == status.workload_id]:
                del self.allocations[key]
        else:
            self.statuses[status.workload_id] = status
        self.version += 1

    def add_placement(self, placement: core.Placement) -> None:
        for pod in placement.pods:
            self.allocations[(placement.workload_id, pod.pod)] = core.Allocation(
                placement.workload_id, pod.pod, pod.node, pod.gpu_devices)
        self.version += 1

    def set_pending(self, reasons: Iterable[core.PendingReason]) -> None:
        self.pending = {reason.workload_id: reason for reason in reasons}

    # reading ----------------------------------------------------------------------------
    def pending_changes(self, reasons: Iterable[core.PendingReason]
                        ) -> list[tuple[str, core.PendingReason | None]]:
        """(workload id, its new reason or None when it no longer waits) where that changed."""
        new = {reason.workload_id: reason for reason in reasons}
        changed: list[tuple[str, core.PendingReason | None]] = [
            (wid, reason) for wid, reason in new.items() if self.pending.get(wid) != reason
        ]
        changed += [(wid, None) for wid in self.pending if wid not in new]
        return changed

    def trace_headers(self, workload_id: str) -> Mapping[str, str]:
        """The submission's trace context, else the one the phase events carried."""
        request = self.requests.get(workload_id)
        if request is not None and request.trace_headers:
            return request.trace_headers
        status = self.statuses.get(workload_id)
        return status.trace_headers if status is not None else {}

    def snapshot(self) -> core.ClusterSnapshot:
        allocations = list(self.allocations.values())
        workloads: list[core.Workload] = []
        for wid, status in self.statuses.items():
            request = self.requests.get(wid)
            for pod in status.pods:
                # Kubernetes shows the pod on a node with no decision of ours behind it: it
                # holds GPUs all the same.
                if pod.node and pod.holds_resources and (wid, pod.name) not in self.allocations:
                    gpus = pod.gpus or (request.gpus_per_pod if request else 0)
                    allocations.append(core.Allocation(wid, pod.name, pod.node,
                                                       unknown_devices=gpus))
            if request is None:
                continue  # schedulable once both the request and the pods are known
            workloads.append(core.Workload(
                id=wid,
                project=request.project,
                priority=request.priority,
                submitted_at=request.submitted_at,
                gpus_per_pod=request.gpus_per_pod,
                min_pods=request.min_pods,
                pods=request.pods,
                node_pools=request.node_pools,
                preemptible=request.preemptible,
                waiting_pods=tuple(
                    pod.name for pod in status.pods
                    if pod.waits_for_node and (wid, pod.name) not in self.allocations
                ),
            ))
        return core.ClusterSnapshot(nodes=tuple(self.nodes.values()),
                                    workloads=tuple(workloads),
                                    allocations=tuple(allocations))
