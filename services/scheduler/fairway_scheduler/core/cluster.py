"""The scheduler's state in memory, and how events become state.

`ClusterState` mirrors the committed tables: the service changes it only after the transaction
that wrote the same change has committed, so a crash at any point leaves the tables right and a
restart loads them back. It keeps, between cycles, the snapshot's parts and the `Ledger` that
did not change. Pure bookkeeping: no I/O, no asyncio.
"""

import itertools
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from fairway_contracts.events import (
    DepartmentChanged,
    NodePoolChanged,
    PodGroupChanged,
    ProjectChanged,
    WorkloadSubmitted,
)
from fairway_contracts.events import Quota as OrgQuota
from fairway_contracts.events import TimeAwareFairness as PoolTimeAwareFairness
from fairway_contracts.workloads import (
    GPU_SWAP_LABEL,
    NODE_TYPE_LABEL,
    PRIORITY_CLASSES,
    Compute,
    Phase,
    PodRole,
)
from fairway_scheduler.core import model
from fairway_scheduler.core.ledger import Ledger
from fairway_scheduler.core.nodes import natural
from fairway_scheduler.core.swap import GpuSwap
from fairway_scheduler.core.usage import UsageHistory

# Kubernetes pod phases after which a pod holds nothing and waits for nothing.
FINISHED_POD_PHASES = frozenset({"Succeeded", "Failed"})
DEFAULT_POOL = "default"

_WORKLOAD = operator.itemgetter(0)  # of a workload's part of a snapshot
# Kept snapshots' generations, unique in the process (so no two states' snapshots share one).
_GENERATIONS = itertools.count(1)
_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def pool_time_aware(own: PoolTimeAwareFairness | None,
                    cluster: model.TimeAwareFairness) -> model.TimeAwareFairness | None:
    """A node pool's time-aware fairness: the fields it sets over the cluster's (None: it
    sets nothing, the cluster's holds)."""
    if own is None:
        return None
    return model.TimeAwareFairness(
        enabled=cluster.enabled if own.enabled is None else own.enabled,
        window_type=own.window_type or cluster.window_type,
        window_seconds=(cluster.window_seconds if own.window_size is None
                        else duration_seconds(own.window_size)),
        half_life_seconds=(cluster.half_life_seconds if own.half_life_period is None
                           else duration_seconds(own.half_life_period)),
        k_value=cluster.k_value if own.k_value is None else own.k_value)


def pool_swap(pool: NodePoolChanged) -> GpuSwap | None:
    """The pool's GPU memory swap settings, when swap is on (with host memory to swap to)."""
    if not pool.swap_enabled or pool.cpu_swap_memory_mib <= 0:
        return None
    return GpuSwap(pool.cpu_swap_memory_mib, pool.reserved_gpu_memory_for_swap_mib)


def duration_seconds(value: str | None) -> float:
    """A node pool's minGuaranteedRuntime ("90s", "2h") in seconds; 0 when unset (the API
    validated its shape)."""
    match = _DURATION.match(value or "")
    return float(int(match.group(1)) * _SECONDS[match.group(2)]) if match else 0.0


# Policy rejects unknown priority classes; should one slip through, it queues like a training.
UNKNOWN_PRIORITY = PRIORITY_CLASSES["train"]


def _fraction(compute: Compute) -> dict[str, float | int | None]:
    """A fraction's part of a request: the portion of each device, or the memory it asks of
    each device (the scheduler converts it with the node's GPU memory); the portion a dynamic
    fraction may grow to. Whole devices: nothing."""
    if compute.gpu_request_type == "portion":
        return {"gpu_portion": compute.gpu_portion_request,
                "gpu_limit": compute.gpu_portion_limit}
    if compute.gpu_request_type == "memory":
        return {"gpu_memory_mib": compute.gpu_memory_request_mib(),
                "gpu_memory_limit_mib": compute.gpu_memory_limit_mib()}
    return {}


def priority_value(priority_class: str) -> int:
    """The value the scheduler orders its queue by (higher first)."""
    return PRIORITY_CLASSES.get(priority_class, UNKNOWN_PRIORITY)


def core_quota(quota: OrgQuota, scale: float = 1) -> model.Quota:
    """An org event's quota in the core's terms (limit None -> -1, CPU cores -> millicores)."""
    return model.Quota(deserved=quota.deserved * scale,
                      limit=-1 if quota.limit is None else quota.limit * scale,
                      over_quota_weight=quota.over_quota_weight)


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
    project_id: str | None = None
    # Fractions (None: whole devices) and host resources, per pod.
    gpu_portion: float | None = None
    gpu_memory_mib: int | None = None
    gpu_limit: float | None = None
    gpu_memory_limit_mib: int | None = None  # a memory fraction's limit, per device
    cpu_millis: int = 0
    memory_mib: int = 0
    node_type: str | None = None  # only nodes labelled fairway.io/node-type=<this>
    name: str = ""
    # A distributed workload's master when its spec sizes it apart (`masterSpec.compute`):
    # the pod lifecycle labels fairway.io/role=master asks for this, the others for the above.
    master: model.PodSize | None = None
    # Its topology request: levels (node label keys) of its node pool's topology.
    topology_required: str | None = None
    topology_preferred: str | None = None
    # A third-party workload's request again after a scale (its pods and minimum): the
    # highest revision counts.
    revision: int = 0

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
            gpus_per_pod=spec.compute.devices_per_pod(),
            submitted_at=event.created_at,
            trace_headers=dict(trace_headers),
            project_id=event.project_id,
            cpu_millis=spec.compute.cpu_millis(),
            memory_mib=spec.compute.memory_mib(),
            node_type=spec.node_type,
            name=event.name,
            master=master_size(spec.master_spec.compute if spec.master_spec else None),
            topology_required=spec.topology.required_placement if spec.topology else None,
            topology_preferred=spec.topology.preferred_placement if spec.topology else None,
            revision=event.revision,
            **_fraction(spec.compute),
        )

    def allocation(self, workload_id: str, pod: model.PodPlacement, *, master: bool = False
                   ) -> model.Allocation:
        """What the placed pod holds; `master`: it is the master, sized apart."""
        size = self.master if master and self.master is not None else self
        return model.Allocation(workload_id, pod.pod, pod.node, pod.gpu_devices,
                               portion=pod.portion, gpu_memory_mib=pod.gpu_memory_mib,
                               cpu_millis=size.cpu_millis, memory_mib=size.memory_mib)


def master_size(compute: Compute | None) -> model.PodSize | None:
    """The master's own size from its `masterSpec.compute` (None: it is sized like the
    workers, as lifecycle builds it then)."""
    if compute is None:
        return None
    fraction = _fraction(compute)
    return model.PodSize(gpus_per_pod=compute.devices_per_pod(),
                         gpu_portion=fraction.get("gpu_portion"),
                         gpu_memory_mib=fraction.get("gpu_memory_mib"),
                         cpu_millis=compute.cpu_millis(), memory_mib=compute.memory_mib())


@dataclass(frozen=True, slots=True)
class PodStatus:
    name: str
    node: str | None = None
    phase: str = "Pending"
    gpus: int = 0
    role: str = PodRole.MAIN.value  # its fairway.io/role label (rows kept from before: main)

    @property
    def is_master(self) -> bool:
        return self.role == PodRole.MASTER.value

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
    time: datetime | None = None  # when lifecycle saw it so

    @property
    def finished(self) -> bool:
        return self.phase.terminal

    def master_pod(self) -> str | None:
        """The name of its master pod (labelled fairway.io/role=master; in rows kept from
        before roles were recorded, the pod named <workload>-master-...), if it has one."""
        return next((pod.name for pod in self.pods if pod.is_master), None) or next(
            (pod.name for pod in self.pods if pod.role == PodRole.MAIN.value
             and "-master-" in pod.name), None)

    def pods_holding(self) -> frozenset[str]:
        """Pods that keep their allocation: listed and not finished, also when the workload
        is over (a PyTorch job completes with its master while its workers still run): their
        devices are busy until lifecycle reports them gone, and placing on them would be
        refused by the kubelet."""
        return frozenset(pod.name for pod in self.pods if pod.holds_resources)

    @classmethod
    def from_event(cls, event: PodGroupChanged, trace_headers: Mapping[str, str]
                   ) -> "WorkloadStatus":
        return cls(
            workload_id=event.workload_id,
            project=event.project,
            sequence=event.sequence,
            phase=event.phase,
            pods=tuple(PodStatus(name=p.name, node=p.node, phase=p.phase, gpus=p.gpus,
                                 role=p.role.value)
                       for p in event.pods),
            trace_headers=dict(trace_headers),
            time=event.time,
        )


@dataclass(frozen=True, slots=True)
class PendingInfo:
    """What the published pending events of a workload need beyond its reason."""

    project: str
    since: datetime
    version: int = 0  # SchedulingPending events sent for it so far
    published_at: datetime | None = None  # the last one, when this process sent it


class Allocations(dict[tuple[str, str], model.Allocation]):
    """The allocations held, by (workload, pod), with each workload's pods indexed: a finished
    or evicted workload's allocations are found without walking all of them (a burst of
    completions at 40,000 running pods would walk them once per workload). Only item
    assignment, `del` and `pop` change it; the bulk updates that would bypass the index are
    refused."""

    def __init__(self) -> None:
        super().__init__()
        self._pods: dict[str, dict[str, None]] = {}  # in the order they were allocated
        self.on_change: Callable[[str], None] = lambda workload_id: None

    def __setitem__(self, key: tuple[str, str], value: model.Allocation) -> None:
        super().__setitem__(key, value)
        self._pods.setdefault(key[0], {})[key[1]] = None
        self.on_change(key[0])

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(key)
        self._forget(key)

    def pop(self, key: tuple[str, str], *default):  # type: ignore[override]
        if key in self:
            self._forget(key)
        return super().pop(key, *default)

    def _forget(self, key: tuple[str, str]) -> None:
        self.on_change(key[0])
        pods = self._pods.get(key[0])
        if pods is not None:
            pods.pop(key[1], None)
            if not pods:
                del self._pods[key[0]]

    def pods_of(self, workload_id: str) -> frozenset[str]:
        return frozenset(self._pods.get(workload_id, ()))

    def of(self, workload_id: str) -> list[model.Allocation]:
        """The workload's allocations, in the order they were made."""
        return [self[(workload_id, pod)] for pod in self._pods.get(workload_id, ())]

    def _refused(self, *args, **kwargs):
        raise TypeError("Allocations changes one item at a time (its index would go stale)")

    update = setdefault = popitem = clear = _refused  # type: ignore[assignment]


# The workload id of foreign usage: no workload has it (ids are UUIDs), so no project.
FOREIGN_WORKLOAD = "foreign"


class ClusterState:
    def __init__(self) -> None:
        # Nodes as reported (`pool` is the inventory's node_pool), their labels and capacity.
        self.nodes: dict[str, model.Node] = {}
        self.node_labels: dict[str, Mapping[str, str]] = {}
        self.max_pods: dict[str, int] = {}
        self.requests: dict[str, WorkloadRequest] = {}
        self.statuses: dict[str, WorkloadStatus] = {}
        self.allocations = Allocations()
        # Each waiting workload's reason as last told (or kept back: `Outcome.deferred`).
        self.pending: dict[str, model.WaitReason] = {}
        self.pending_info: dict[str, PendingInfo] = {}
        # Org units as their last events state them (deleted ones dropped).
        self.projects: dict[str, ProjectChanged] = {}  # by id
        self.departments: dict[str, DepartmentChanged] = {}  # by id
        self.node_pools: dict[str, NodePoolChanged] = {}  # by name
        # The queue status last published: (kind, name, pool) -> (payload, version).
        self.queue_status: dict[tuple[str, str, str], tuple[dict, int]] = {}
        # Disruption: since when a workload runs (minimum guaranteed runtime) and since when
        # it runs below its gang minimum (stale gangs), as this process saw it (a restart
        # starts both clocks again: protective, never early); the pods a preemption decision
        # is evicting, until lifecycle reports them gone.
        self.running_since: dict[str, datetime] = {}
        self.below_min_since: dict[str, datetime] = {}
        self.evicting: dict[str, set[str]] = {}
        # Workloads placed onto room their victims are still vacating: the next cycle places
        # them first (`CycleResult.nominated`, kept in memory: after a restart they are only
        # next in line, as their queues stand).
        self.nominated: tuple[model.Nomination, ...] = ()
        # Grows with every change a cycle could care about; a cycle over an unchanged state
        # would decide nothing new.
        self.version = 0
        # What the allocations hold per device and queue, kept between cycles so a cycle
        # does not rebuild it from every allocation (`kept_ledger`). None: built afresh at the
        # next cycle (a node or pool changed); workloads whose allocations, request or status
        # changed since the last cycle are held again then.
        self._ledger: Ledger | None = None
        self._ledger_pods: dict[str, list[str]] = {}  # workload -> its pods in the ledger
        self._ledger_foreign: dict[str, list[str]] = {}  # node -> its foreign pods in it
        self._ledger_stale: set[str] = set()
        # Each workload's part of a snapshot, kept until something about it changes. Its keys
        # are those of `statuses`, in the same order (None: to be made at the next snapshot),
        # so a snapshot makes only the stale parts and gathers the rest without a walk in
        # Python; `_with_unknown`: the workloads whose part holds pods bound without a
        # decision of ours (rare: only then are the parts walked for them).
        self._workload_parts: dict[str, tuple[model.Workload | None,
                                              tuple[model.Allocation, ...]] | None] = {}
        self._workload_stale: set[str] = set()
        self._with_unknown: set[str] = set()
        self._workloads: tuple[model.Workload, ...] | None = None  # the last snapshot's
        # The parts' workloads in the same order, each at its slot (None: not made yet, not
        # schedulable yet, or gone): a snapshot gathers them from a list, not from the parts.
        self._slots: list[model.Workload | None] = []
        self._slot_of: dict[str, int] = {}
        # What the last kept snapshot tells of its workloads (`model.WorkloadChanges`): the
        # slots' workloads with pods waiting, at the same slots; the ids gone since it (their
        # slot emptied); those running below their minimum and those evicting pods.
        self._changes: model.WorkloadChanges | None = None
        self._waiting_slots: list[model.Workload | None] = []
        self._gone: set[str] = set()
        self._below_min: set[str] = set()
        self._evicting: set[str] = set()
        # A snapshot's nodes (in their pools), pools and queues, kept until a node or an org
        # unit changes: most cycles follow workload events only.
        # (and the cluster's time-aware fairness the pools' were made with)
        self._layout: tuple[tuple[model.Node, ...], tuple[model.NodePool, ...],
                            tuple[model.QueueSpec, ...], model.TimeAwareFairness] | None = None
        self.allocations.on_change = self._touch
        # What pods another scheduler bound hold, per node: (pods, GPUs, millicores, MiB).
        self.foreign: dict[str, tuple[int, int, int, int]] = {}
        # Nodes whose foreign usage changed since the kept ledger held it: held again there
        # at the next cycle (not the whole ledger rebuilt: foreign pods come and go all the
        # time).
        self._foreign_stale: set[str] = set()

    # changes ----------------------------------------------------------------------------
    def _touch(self, workload_id: str) -> None:
        """Something about the workload changed: a cycle's ledger and snapshot see it again."""
        self._ledger_stale.add(workload_id)
        self._workload_stale.add(workload_id)

    def put_node(self, node: model.Node, labels: Mapping[str, str] | None = None,
                 max_pods: int = 110) -> None:
        self.nodes[node.name] = replace(node, max_pods=max_pods)
        self.node_labels[node.name] = dict(labels or {})
        self.max_pods[node.name] = max_pods
        self._ledger = None
        self._layout = None
        self.version += 1

    def same_node(self, node: model.Node, labels: Mapping[str, str], max_pods: int) -> bool:
        return (self.nodes.get(node.name) == replace(node, max_pods=max_pods)
                and self.node_labels.get(node.name) == dict(labels)
                and self.max_pods.get(node.name) == max_pods)

    def put_foreign(self, node: str, pods: int, gpus: int, cpu_millis: int,
                    memory_mib: int) -> bool:
        """What the node's pods that Fairway did not place hold (from its inventory). True
        when that changed."""
        usage = (pods, gpus, cpu_millis, memory_mib)
        if self.foreign.get(node, (0, 0, 0, 0)) == usage:
            return False
        if pods:
            self.foreign[node] = usage
        else:
            self.foreign.pop(node, None)
        self._foreign_stale.add(node)
        self.version += 1
        return True

    def foreign_allocations(self, nodes: Iterable[str] | None = None
                            ) -> tuple[model.Allocation, ...]:
        """Foreign usage as allocations of no workload (so of no project): a node's GPUs,
        CPU and memory on its first, one more allocation per further pod (the pod count).
        Their GPUs are `unknown_devices`: they take the devices Fairway's pods leave free.
        `nodes`: of those nodes only."""
        out: list[model.Allocation] = []
        for node in self.foreign if nodes is None else nodes:
            if node not in self.foreign:
                continue
            pods, gpus, cpu, memory = self.foreign[node]
            out.append(model.Allocation(FOREIGN_WORKLOAD, f"{node}/0", node,
                                        unknown_devices=gpus, cpu_millis=cpu,
                                        memory_mib=memory))
            out.extend(model.Allocation(FOREIGN_WORKLOAD, f"{node}/{i}", node)
                       for i in range(1, pods))
        return tuple(out)

    def _foreign_pool(self, ledger: Ledger) -> str | None:
        """The pool `Ledger.of` gives the foreign pseudo-workload: that of the first
        allocation it holds (a known one, in snapshot order: a node's second pod, or a node
        with no foreign GPUs; else the first node by name of those with foreign GPUs)."""
        held = [n for n in self.foreign if n in ledger.nodes]
        first = next((n for n in held if self.foreign[n][0] > 1 or not self.foreign[n][1]),
                     None) or min(held, key=natural, default=None)
        return ledger.nodes[first].pool if first is not None else None

    def remove_node(self, name: str) -> None:
        self.foreign.pop(name, None)
        self.nodes.pop(name, None)
        self.node_labels.pop(name, None)
        self.max_pods.pop(name, None)
        self._ledger = None
        self._layout = None
        self.version += 1

    def put_project(self, event: ProjectChanged) -> None:
        if event.deleted:
            self.projects.pop(event.project_id, None)
        else:
            self.projects[event.project_id] = event
        self._ledger = None
        self._layout = None
        self._workload_parts.clear()  # default pools may have changed: all made again
        self.version += 1

    def put_department(self, event: DepartmentChanged) -> None:
        if event.deleted:
            self.departments.pop(event.department_id, None)
        else:
            self.departments[event.department_id] = event
        self._ledger = None
        self._layout = None
        self.version += 1

    def put_node_pool(self, event: NodePoolChanged) -> None:
        if event.deleted:
            self.node_pools.pop(event.name, None)
        else:
            self.node_pools[event.name] = event
        self._ledger = None
        self._layout = None
        self.version += 1

    def add_request(self, request: WorkloadRequest) -> None:
        known = self.requests.get(request.id)
        if known is not None and request.revision:
            # a revision (a scaled third-party owner): its place in the queue stays
            request = replace(request, submitted_at=known.submitted_at)
        self.requests[request.id] = request
        self._touch(request.id)
        self.version += 1

    def apply_status(self, status: WorkloadStatus, released: Iterable[str],
                     now: datetime | None = None) -> None:
        wid = status.workload_id
        for pod in released:
            self.allocations.pop((wid, pod), None)
        evicting = self.evicting.get(wid)
        if evicting is not None:
            evicting.intersection_update(self.allocations.pods_of(wid))
            if not evicting:
                del self.evicting[wid]
        now = now or status.time
        request = self.requests.get(wid)
        if status.phase in (Phase.RUNNING, Phase.DEGRADED) and not status.finished and now:
            self.running_since.setdefault(wid, now)
            # A pod that succeeded is done, not lost: a gang whose pods finish one by one is
            # ending, and evicting its last running pods as a stale gang would be wrong.
            placed = sum(1 for p in status.pods
                         if p.node and (p.holds_resources or p.phase == "Succeeded"))
            if request is not None and placed < request.min_pods:
                self.below_min_since.setdefault(wid, now)
            else:
                self.below_min_since.pop(wid, None)
        else:
            self.running_since.pop(wid, None)
            self.below_min_since.pop(wid, None)
        if status.finished:
            # Over: nothing more to place; the tables keep the record. Pods still running
            # (being deleted) hold their devices until lifecycle reports them gone. A pending
            # reason stays until the next cycle clears it (and says so).
            self.requests.pop(status.workload_id, None)
            self.evicting.pop(status.workload_id, None)
            holding = status.pods_holding()
            for pod in self.allocations.pods_of(status.workload_id) - holding:
                del self.allocations[(status.workload_id, pod)]
            if holding:
                self._put_status(status)
            else:
                self.statuses.pop(status.workload_id, None)
                self._workload_parts.pop(status.workload_id, None)
                self._with_unknown.discard(status.workload_id)
                slot = self._slot_of.pop(status.workload_id, None)
                if slot is not None:
                    if self._slots[slot] is not None:
                        self._gone.add(status.workload_id)
                    self._slots[slot] = self._waiting_slots[slot] = None
        else:
            self._put_status(status)
        self._touch(wid)
        self.version += 1

    def _put_status(self, status: WorkloadStatus) -> None:
        wid = status.workload_id
        if wid not in self.statuses and len(self._workload_parts) == len(self.statuses):
            self._workload_parts[wid] = None  # its place in the order; made once touched
            self._slot_of[wid] = len(self._slots)
            self._slots.append(None)
            self._waiting_slots.append(None)
        self.statuses[wid] = status

    def add_placement(self, placement: model.Placement) -> None:
        request = self.requests.get(placement.workload_id)
        master = self.master_pod(placement.workload_id)
        for pod in placement.pods:
            self.allocations[(placement.workload_id, pod.pod)] = (
                request.allocation(placement.workload_id, pod, master=pod.pod == master)
                if request is not None else
                model.Allocation(placement.workload_id, pod.pod, pod.node, pod.gpu_devices,
                                portion=pod.portion, gpu_memory_mib=pod.gpu_memory_mib))
        self.version += 1

    def master_pod(self, workload_id: str) -> str | None:
        """The workload's master pod, where its master is sized apart (else None: every pod
        is sized alike)."""
        request = self.requests.get(workload_id)
        status = self.statuses.get(workload_id)
        if request is None or request.master is None or status is None:
            return None
        return status.master_pod()

    def pods_held(self, workload_ids: Iterable[str]) -> dict[str, set[str]]:
        """The pods holding allocations, for these workloads."""
        return {wid: set(self.allocations.pods_of(wid)) for wid in workload_ids}

    def add_evictions(self, evictions: Iterable[model.Eviction]) -> None:
        evictions = list(evictions)
        held_by = self.pods_held(e.workload_id for e in evictions)
        for eviction in evictions:
            held = held_by[eviction.workload_id]
            pods = held if eviction.pods is None else held & set(eviction.pods)
            if pods:
                self.evicting.setdefault(eviction.workload_id, set()).update(pods)
                self._touch(eviction.workload_id)
        self.version += 1

    def nominate_after_restart(self, evictions: Iterable[model.Eviction]) -> None:
        """The nominations the last cycles made, from the evictions still under way (as the
        tables keep them): each workload they make room for, in the pool of its victims'
        nodes, and each workload being moved (its own pods leave)."""
        victims: dict[str, list[str]] = {}
        pools: dict[str, str] = {}
        moved: dict[str, str] = {}
        for eviction in evictions:
            pod = next(iter(eviction.pods or self.allocations.pods_of(eviction.workload_id)),
                       None)
            allocation = self.allocations.get((eviction.workload_id, pod))
            node = self.nodes.get(allocation.node) if allocation is not None else None
            if node is None:
                continue
            pool = self.pool_of(node)
            if eviction.by is not None:
                victims.setdefault(eviction.by, []).append(eviction.workload_id)
                pools.setdefault(eviction.by, pool)
            if eviction.reason == "consolidate":
                moved[eviction.workload_id] = pool
        self.nominated = tuple(
            [model.Nomination(wid, pools[wid], tuple(sorted(v))) for wid, v in
             sorted(victims.items())]
            + [model.Nomination(wid, pool, (wid,)) for wid, pool in sorted(moved.items())
               if wid not in victims])

    def set_pending(self, reasons: Iterable[model.PendingReason] | Mapping[str, model.WaitReason]
                    ) -> None:
        """The reasons told now: by workload, or one by one (`reasons_by_workload`)."""
        pending = self.pending = model.reasons_by_workload(reasons)
        self.pending_info = {wid: info for wid, info in self.pending_info.items()
                             if wid in pending}

    # reading ----------------------------------------------------------------------------
    def project_of(self, workload_id: str) -> str | None:
        request = self.requests.get(workload_id)
        if request is not None:
            return request.project
        info = self.pending_info.get(workload_id)
        if info is not None:
            return info.project
        status = self.statuses.get(workload_id)
        return status.project if status is not None else None

    def trace_headers(self, workload_id: str) -> Mapping[str, str]:
        """The submission's trace context, else the one the phase events carried."""
        request = self.requests.get(workload_id)
        if request is not None and request.trace_headers:
            return request.trace_headers
        status = self.statuses.get(workload_id)
        return status.trace_headers if status is not None else {}

    def pool_of(self, node: model.Node) -> str:
        """The pool whose label (key=value) the node carries, else `default`. While no pool
        with a label is defined (`default` alone says nothing about membership), the pool the
        inventory reported (from the node's fairway.io/node-pool label)."""
        labelled = [(name, pool) for name, pool in sorted(self.node_pools.items())
                    if pool.label_key and pool.label_value is not None]
        if not labelled:
            return node.pool
        labels = self.node_labels.get(node.name, {})
        for name, pool in labelled:
            if labels.get(pool.label_key) == pool.label_value:
                return name
        return DEFAULT_POOL

    def org_id(self, kind: str, name: str) -> str | None:
        units = self.projects.values() if kind == "project" else self.departments.values()
        for unit in units:
            if unit.name == name:
                return unit.project_id if isinstance(unit, ProjectChanged) else unit.department_id
        return None

    def queue_specs(self) -> tuple[model.QueueSpec, ...]:
        """Queues from the org units: one per (unit, pool) with resources. A project the
        scheduler has not heard of gets the core's default (deserved 0, no limit, weight 1)."""
        specs: list[model.QueueSpec] = []
        department_names: dict[str, str] = {}
        for department in sorted(self.departments.values(), key=lambda d: d.name):
            department_names[department.department_id] = department.name
            for r in department.resources:
                specs.append(model.QueueSpec(
                    department.name, "department", r.node_pool, None,
                    core_quota(r.gpu), core_quota(r.cpu, 1000), core_quota(r.memory),
                    created_at=department.created_at))
        configured = {(d.name, r.node_pool) for d in self.departments.values()
                      for r in d.resources}
        # A department with no quota in a pool does not constrain its projects there: it
        # deserves what they deserve together (else non-preemptible work could never run).
        implied: dict[tuple[str, str], list[float]] = {}
        for project in self.projects.values():
            parent = department_names.get(project.department_id or "")
            for r in project.resources:
                if parent is not None and (parent, r.node_pool) not in configured:
                    sums = implied.setdefault((parent, r.node_pool), [0.0, 0.0, 0.0])
                    sums[0] += r.gpu.deserved
                    sums[1] += r.cpu.deserved * 1000
                    sums[2] += r.memory.deserved
        created = {d.name: d.created_at for d in self.departments.values()}
        for (department, pool), (gpu, cpu, memory) in sorted(implied.items()):
            specs.append(model.QueueSpec(department, "department", pool, None,
                                        model.Quota(deserved=gpu), model.Quota(deserved=cpu),
                                        model.Quota(deserved=memory),
                                        created_at=created.get(department)))
        for project in sorted(self.projects.values(), key=lambda p: p.name):
            parent = department_names.get(project.department_id or "")
            resources = project.resources
            if not resources and parent is not None:
                # No quota anywhere, but it belongs to a department: say so with one queue.
                specs.append(model.QueueSpec(project.name, "project", DEFAULT_POOL, parent,
                                             created_at=project.created_at))
            for r in resources:
                specs.append(model.QueueSpec(
                    project.name, "project", r.node_pool, parent,
                    core_quota(r.gpu), core_quota(r.cpu, 1000), core_quota(r.memory),
                    created_at=project.created_at))
        return tuple(specs)

    def kept_ledger(self, snapshot: model.ClusterSnapshot) -> Ledger | None:
        """What `snapshot`'s allocations hold, as `Ledger.of(snapshot)` would build it,
        but kept between cycles: only workloads that changed are held again. None when the
        snapshot has pods bound without a decision of ours (they take the devices left free,
        so they are held after all the others: the cycle builds its ledger then, rarely)."""
        foreign_pods = sum(pods for pods, *_ in self.foreign.values())
        if len(snapshot.allocations) != len(self.allocations) + foreign_pods:
            return None
        if self._ledger is None:
            return self._fresh_ledger(snapshot)
        ledger = self._ledger
        rehold = self._foreign_to_hold_again(ledger)
        for node in rehold:
            for pod in self._ledger_foreign.pop(node, ()):
                ledger.release(FOREIGN_WORKLOAD, pod)
        for wid in self._ledger_stale:
            for pod in self._ledger_pods.pop(wid, ()):
                ledger.release(wid, pod)
            allocations = self.allocations.of(wid)
            if not allocations:
                continue
            # as in a snapshot: a workload is known to a cycle once both its request and its
            # pods are; until then (and once over) its pods count on their nodes only
            request = self.requests.get(wid) if wid in self.statuses else None
            for a in allocations:
                if request is None:
                    ledger.hold(a, None, True)
                else:
                    ledger.hold(a, request.project, request.preemptible)
            self._ledger_pods[wid] = [a.pod for a in allocations]
        self._ledger_stale.clear()
        if rehold:
            self._hold_foreign_again(ledger, rehold)
        return ledger

    def _fresh_ledger(self, snapshot: model.ClusterSnapshot) -> Ledger:
        self._ledger = Ledger.of(snapshot)
        self._ledger_pods, self._ledger_foreign = {}, {}
        for a in snapshot.allocations:
            if a.workload_id == FOREIGN_WORKLOAD:
                self._ledger_foreign.setdefault(a.node, []).append(a.pod)
            else:
                self._ledger_pods.setdefault(a.workload_id, []).append(a.pod)
        self._ledger_stale.clear()
        self._foreign_stale.clear()
        return self._ledger

    def _foreign_to_hold_again(self, ledger: Ledger) -> set[str]:
        """Foreign GPUs take the devices Fairway's pods leave free, so they are held after
        them: held again on a node where they changed, or where a changed workload holds (or
        held)."""
        nodes = set(self._foreign_stale)
        if self._ledger_foreign:
            for wid in self._ledger_stale:
                nodes.update(n for pod in self._ledger_pods.get(wid, ())
                             if (n := ledger.node_of(wid, pod)) in self._ledger_foreign)
                nodes.update(a.node for a in self.allocations.of(wid)
                             if a.node in self._ledger_foreign)
        return nodes

    def _hold_foreign_again(self, ledger: Ledger, nodes: set[str]) -> None:
        foreign = self.foreign_allocations(sorted(nodes, key=natural))
        ledger.hold_after_known(foreign)
        for a in foreign:
            self._ledger_foreign.setdefault(a.node, []).append(a.pod)
        if (pool := self._foreign_pool(ledger)) is not None:
            ledger.held_pool[FOREIGN_WORKLOAD] = pool
        self._foreign_stale.clear()

    def _workload_part(self, wid: str, status: WorkloadStatus,
                       default_pools: Mapping[str, tuple[str, ...]]
                       ) -> tuple[model.Workload | None, tuple[model.Allocation, ...]]:
        """A workload as a cycle sees it (None until its request is known), and what its pods
        bound without a decision of ours hold."""
        request = self.requests.get(wid)
        master = request.master if request is not None else None
        unknown = []
        for pod in status.pods:
            # Kubernetes shows the pod on a node with no decision of ours behind it: it
            # holds GPUs all the same.
            if pod.node and pod.holds_resources and (wid, pod.name) not in self.allocations:
                size = (master if master is not None and pod.is_master else request)
                gpus = pod.gpus or (size.gpus_per_pod if size else 0)
                unknown.append(model.Allocation(
                    wid, pod.name, pod.node, unknown_devices=gpus,
                    cpu_millis=size.cpu_millis if size else 0,
                    memory_mib=size.memory_mib if size else 0))
        if request is None:
            return None, tuple(unknown)  # schedulable once both request and pods are known
        return model.Workload(
            id=wid,
            project=request.project,
            priority=request.priority,
            submitted_at=request.submitted_at,
            gpus_per_pod=request.gpus_per_pod,
            min_pods=request.min_pods,
            pods=request.pods,
            node_pools=request.node_pools or default_pools.get(request.project, ()),
            preemptible=request.preemptible,
            waiting_pods=tuple(
                pod.name for pod in status.pods
                if pod.waits_for_node and (wid, pod.name) not in self.allocations
            ),
            gpu_portion=request.gpu_portion,
            gpu_memory_mib=request.gpu_memory_mib,
            gpu_limit=request.gpu_limit,
            gpu_memory_limit_mib=request.gpu_memory_limit_mib,
            cpu_millis=request.cpu_millis,
            memory_mib=request.memory_mib,
            started_at=self.running_since.get(wid),
            below_min_since=self.below_min_since.get(wid),
            evicting_pods=tuple(sorted(self.evicting.get(wid, ()))),
            node_type=request.node_type,
            topology_required=request.topology_required,
            topology_preferred=request.topology_preferred,
            name=request.name,
            master=master,
            master_pod=self.master_pod(wid),
        ), tuple(unknown)

    def snapshot(self, now: datetime | None = None,
                 disruption: model.DisruptionSettings | None = None, *,
                 cached: bool = True,
                 time_aware: model.TimeAwareFairness = model.TIME_AWARE_FAIRNESS_OFF,
                 usage: UsageHistory | None = None) -> model.ClusterSnapshot:
        """What a cycle decides on. Each workload's part is kept between snapshots and made
        again only when something about it changed (`cached=False`: all made afresh, the
        same snapshot): a snapshot costs the workloads that changed since the last one, and
        two copies of references (its workloads and allocations, gathered at C speed)."""
        if cached:
            workloads, unknown = self._kept_workloads()
        else:
            workloads, unknown = self._fresh_workloads()
        allocations = tuple(self.allocations.values())
        if unknown:
            allocations += tuple(unknown)
        if self.foreign:
            allocations += self.foreign_allocations()
        layout = self._layout if cached else None
        if layout is not None and layout[3] != time_aware:
            layout = None  # the pools' settings were made over another cluster setting
        if layout is None:
            # a node carries only the labels that name a level of some pool's topology
            levels = tuple(dict.fromkeys(level for p in self.node_pools.values()
                                         for level in p.topology_levels))
            nodes = tuple(
                replace(node, pool=self.pool_of(node),
                        node_type=self.node_labels.get(node.name, {}).get(NODE_TYPE_LABEL),
                        labels=_topology_labels(self.node_labels.get(node.name, {}), levels),
                        gpu_swap=self.node_labels.get(node.name, {}).get(GPU_SWAP_LABEL)
                        == "true")
                for node in self.nodes.values())
            pools = tuple(model.NodePool(p.name, p.gpu_placement_strategy,
                                        p.cpu_placement_strategy,
                                        duration_seconds(p.min_guaranteed_runtime),
                                        pool_time_aware(p.time_aware_fairness, time_aware),
                                        topology=tuple(p.topology_levels),
                                        swap=pool_swap(p))
                          for _, p in sorted(self.node_pools.items()))
            layout = (nodes, pools, self.queue_specs(), time_aware)
            if cached:
                self._layout = layout
        nodes, pools, queues, _ = layout
        return model.ClusterSnapshot(nodes=nodes, workloads=workloads,
                                    allocations=allocations, pools=pools,
                                    queues=queues, now=now,
                                    disruption=disruption or model.DisruptionSettings(),
                                    nominated=self.nominated, time_aware_fairness=time_aware,
                                    usage=usage, changes=self._changes if cached else None)

    def time_aware_anywhere(self, cluster: model.TimeAwareFairness) -> bool:
        """Whether time-aware fairness is on in the cluster or in some node pool."""
        return cluster.enabled or any(
            p.time_aware_fairness is not None and p.time_aware_fairness.enabled
            for p in self.node_pools.values())

    def _default_pools(self) -> dict[str, tuple[str, ...]]:
        return {p.name: tuple(p.default_node_pools) for p in self.projects.values()}

    def _fresh_workloads(self) -> tuple[tuple[model.Workload, ...], list[model.Allocation]]:
        """Every workload's part made afresh, in the order of `statuses`."""
        default_pools = self._default_pools()
        workloads: list[model.Workload] = []
        unknown: list[model.Allocation] = []
        for wid, status in self.statuses.items():
            workload, bound = self._workload_part(wid, status, default_pools)
            unknown.extend(bound)
            if workload is not None:
                workloads.append(workload)
        return tuple(workloads), unknown

    def _kept_workloads(self) -> tuple[tuple[model.Workload, ...], list[model.Allocation]]:
        """The kept parts, the stale ones made again: the same as `_fresh_workloads`. What
        changed since the last kept snapshot is told with them (`_changes`)."""
        parts = self._workload_parts
        stale = self._workload_stale
        before = self._changes
        if len(parts) != len(self.statuses):
            # cleared (an org change): every part made again, in the order of `statuses`
            stale = self._clear_parts()
            before = None  # all made again: told as no change known
        made: dict[str, model.Workload] = {}
        gone, self._gone = self._gone, set()
        for wid in gone:
            self._below_min.discard(wid)
            self._evicting.discard(wid)
        waiting_changed = bool(gone) or self._workloads is None
        if stale or self._workloads is None:
            waiting_changed |= self._make_stale(stale, made, gone)
            self._workload_stale.clear()
            # every part is made now (each placeholder's workload was touched)
            if len(self._slots) > 2 * len(parts):  # gone workloads' slots: closed up
                self._slots = list(map(_WORKLOAD, parts.values()))
                self._waiting_slots = [w if w is not None and w.waiting_pods else None
                                       for w in self._slots]
                self._slot_of = dict(zip(parts, range(len(parts)), strict=True))
            self._workloads = tuple(filter(None, self._slots))
        waiting = (tuple(filter(None, self._waiting_slots))
                   if waiting_changed or before is None else before.waiting)
        generation = next(_GENERATIONS)
        steps: tuple[model.WorkloadStep, ...] = ()
        if before is not None:
            step = (before.generation, generation, made, frozenset(gone))
            steps = (*before.steps[1 - model.STEPS_KEPT:], step)
        self._changes = model.WorkloadChanges(
            generation, self._workloads, waiting, steps,
            below_min=bool(self._below_min), evicting=frozenset(self._evicting))
        unknown: list[model.Allocation] = []
        if self._with_unknown:
            for part in parts.values():
                if part is not None and part[1]:
                    unknown.extend(part[1])
        return self._workloads, unknown

    def _clear_parts(self) -> set[str]:
        """Every part to be made again, in the order of `statuses` (their ids)."""
        parts = self._workload_parts
        parts.clear()
        parts.update(dict.fromkeys(self.statuses))
        self._with_unknown.clear()
        self._slots = [None] * len(parts)
        self._waiting_slots = [None] * len(parts)
        self._slot_of = dict(zip(parts, range(len(parts)), strict=True))
        self._below_min.clear()
        self._evicting.clear()
        return set(self.statuses)

    def _make_stale(self, stale: set[str], made: dict[str, model.Workload], gone: set[str]
                    ) -> bool:
        """The stale parts made again, each workload in its slot; those made (or new) put in
        `made`, those no longer schedulable in `gone`. True when the workloads with pods
        waiting changed."""
        parts, slots, waiting_slots = self._workload_parts, self._slots, self._waiting_slots
        below_min, evicting = self._below_min, self._evicting
        default_pools: dict[str, tuple[str, ...]] | None = None
        waiting_changed = False
        for wid in stale:
            status = self.statuses.get(wid)
            if status is None:
                continue
            if default_pools is None:
                default_pools = self._default_pools()
            part = parts[wid] = self._workload_part(wid, status, default_pools)
            slot = self._slot_of[wid]
            workload = part[0]
            if workload is not None:
                made[wid] = workload
                # (inline: a burst of bindings makes 100,000 workloads again)
                if workload.below_min_since is not None:
                    below_min.add(wid)
                elif below_min:
                    below_min.discard(wid)
                if workload.evicting_pods:
                    evicting.add(wid)
                elif evicting:
                    evicting.discard(wid)
            else:
                if slots[slot] is not None:
                    gone.add(wid)  # no longer schedulable (its request gone)
                below_min.discard(wid)
                evicting.discard(wid)
            slots[slot] = workload
            now_waiting = workload if workload is not None and workload.waiting_pods else None
            if now_waiting is not None or waiting_slots[slot] is not None:
                waiting_changed = True
            waiting_slots[slot] = now_waiting
            if part[1]:
                self._with_unknown.add(wid)
            else:
                self._with_unknown.discard(wid)
        return waiting_changed


def _topology_labels(labels: Mapping[str, str], levels: tuple[str, ...]
                     ) -> tuple[tuple[str, str], ...]:
    """The node's labels that name a topology level (in the order of `levels`)."""
    if not levels:
        return ()
    return tuple((level, labels[level]) for level in levels if level in labels)
