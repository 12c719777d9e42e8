"""Domain types shared by every service: workload types, phases, the effective spec."""

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator

from fairway_contracts.base import Contract
from fairway_contracts.quantities import cpu_millis, memory_mib


class WorkloadType(StrEnum):
    WORKSPACE = "workspace"
    TRAINING = "training"
    DISTRIBUTED = "distributed"
    INFERENCE = "inference"

    @property
    def plural(self) -> str:
        """The type's name in API paths (/workloads/trainings) and in the CLI."""
        return PLURALS[self]


# The API's path segment of each type; `distributed` is its own plural, as in Run:ai.
PLURALS: dict[WorkloadType, str] = {
    WorkloadType.WORKSPACE: "workspaces",
    WorkloadType.TRAINING: "trainings",
    WorkloadType.DISTRIBUTED: "distributed",
    WorkloadType.INFERENCE: "inferences",
}
TYPE_OF_PLURAL: dict[str, WorkloadType] = {plural: kind for kind, plural in PLURALS.items()}


class Phase(StrEnum):
    """Run:ai's workload phases plus the transitional and final ones of the replay format."""

    CREATING = "Creating"
    PENDING = "Pending"
    INITIALIZING = "Initializing"
    RUNNING = "Running"
    DEGRADED = "Degraded"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    RESUMING = "Resuming"
    DELETING = "Deleting"
    DELETED = "Deleted"
    FAILED = "Failed"
    COMPLETED = "Completed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.FAILED, Phase.COMPLETED, Phase.DELETED})


# Priority classes: the seven levels and the older per-type names, with Run:ai's Kubernetes
# PriorityClass values, so people moving between the two see the same numbers. Higher runs
# first; below NON_PREEMPTIBLE_FROM a workload is preemptible unless its spec says otherwise.
PRIORITY_CLASSES: dict[str, int] = {
    "very-low": 25,
    "low": 40,
    "train": 50,
    "medium-low": 65,
    "interactive-preemptible": 75,
    "medium": 80,
    "medium-high": 90,
    "build": 100,
    "high": 125,
    "inference": 125,
    "very-high": 150,
}
NON_PREEMPTIBLE_FROM = 100


# The node label that names a node's type; a workload's spec.nodeType becomes a node selector
# on this label, and the scheduler places its pods only on nodes that carry the same value.
NODE_TYPE_LABEL = "fairway.io/node-type"
# A node whose GPU memory can be swapped to host memory (GPU memory swap, per node pool)
GPU_SWAP_LABEL = "fairway.io/gpu-swap"
# Phase reasons of the Stopping and Stopped events of a workload a scheduling rule stopped
# (lifecycle decides; the API shows its desired phase as Stopped, as after a user's stop).
TIME_LIMIT_REASON = "TimeLimitReached"
IDLE_LIMIT_REASON = "IdleGpuLimitReached"
RULE_STOP_REASONS = frozenset({TIME_LIMIT_REASON, IDLE_LIMIT_REASON})


class PodRole(StrEnum):
    MAIN = "main"
    MASTER = "master"
    WORKER = "worker"
    REPLICA = "replica"


class NameValue(Contract):
    name: str
    value: str


class Compute(Contract):
    """What one pod asks for.

    GPUs come whole (`gpu_devices_request` devices) or as a fraction of each of
    `gpu_devices_request` devices of one node (at least one): a portion of each device
    (`gpu_request_type` "portion", 0 < portion <= 1) or an amount of its memory ("memory").
    A limit above the request makes it a dynamic fraction: the request is guaranteed, the pod
    may use memory up to the limit while the device has it free.
    """

    gpu_devices_request: int = Field(default=0, ge=0)
    gpu_request_type: Literal["portion", "memory"] | None = None
    gpu_portion_request: float | None = Field(default=None, gt=0, le=1)
    gpu_portion_limit: float | None = Field(default=None, gt=0, le=1)
    gpu_memory_request: str | None = None  # a size ("10Gi"), per device
    gpu_memory_limit: str | None = None
    cpu_core_request: float | None = Field(default=None, ge=0)
    cpu_memory_request: str | None = None

    @property
    def fractional(self) -> bool:
        """True when the pod shares its devices (a portion or an amount of memory)."""
        return self.gpu_request_type is not None

    def devices_per_pod(self) -> int:
        """Devices one pod uses: at least one for a fraction."""
        if self.fractional:
            return max(self.gpu_devices_request, 1)
        return self.gpu_devices_request

    def gpu_memory_request_mib(self) -> int | None:
        """The GPU memory one device gives the pod, in MiB (memory fractions only)."""
        return memory_mib(self.gpu_memory_request) or None

    def gpu_memory_limit_mib(self) -> int | None:
        return memory_mib(self.gpu_memory_limit) or None

    def gpus_per_pod(self, device_memory_mib: int | None = None) -> float:
        """GPUs one pod counts for: whole devices, or its portion of each device (a memory
        fraction's portion is its memory over the device's; unknown without the device: 0)."""
        if self.gpu_request_type == "portion" and self.gpu_portion_request is not None:
            return self.gpu_portion_request * self.devices_per_pod()
        if self.gpu_request_type == "memory":
            wanted = self.gpu_memory_request_mib()
            if not wanted or not device_memory_mib:
                return 0.0
            return min(1.0, wanted / device_memory_mib) * self.devices_per_pod()
        return float(self.gpu_devices_request)

    def cpu_millis(self) -> int:
        """CPU one pod requests, in millicores (0: none)."""
        return cpu_millis(self.cpu_core_request)

    def memory_mib(self) -> int:
        """Memory one pod requests, in MiB rounded up (0: none)."""
        return memory_mib(self.cpu_memory_request)


class MasterSpec(Contract):
    """A distributed workload's master when it is not a copy of its workers
    (`masterSpecSameAsWorker: false`). What it leaves out is the workers': the image, command
    and arguments when not given, the compute when it names no field (when it names any, it is
    the master's whole request); its environment variables are added to the workers' (the
    master's value wins for a name both give)."""

    image: str | None = None
    command: str | None = None
    args: str | None = None
    environment_variables: list[NameValue] = Field(default_factory=list)
    compute: Compute | None = None


# Metrics that may fall to nothing when no request comes: only these let a server scale to
# zero (latency has no value without requests, so it cannot say "idle").
SCALE_TO_ZERO_METRICS = ("throughput", "concurrency")


# How an inference endpoint is reached, as Run:ai's servingPort names it. Fairway creates the
# Service and records these; who may call the endpoint (authorizationType and its users and
# groups) is enforced on a real cluster by the ingress or gateway in front of it, not here.
class ServingPort(Contract):
    """The port an inference server listens on and how its endpoint is exposed."""

    container: int = Field(ge=1, le=65535)
    protocol: Literal["http", "grpc"] = "http"
    authorization_type: Literal["public", "authenticatedUsers",
                                "authorizedUsersOrGroups"] = "public"
    authorized_users: list[str] = Field(default_factory=list)
    authorized_groups: list[str] = Field(default_factory=list)
    cluster_local_access_only: bool = True

    @property
    def service_port(self) -> int:
        """The Service's port: 80 for http (the URL needs none), the container's for grpc."""
        return 80 if self.protocol == "http" else self.container


class Autoscaling(Contract):
    """Run:ai's autoscaling of an inference server: replicas between min and max, sized so
    that each replica sees at most `metric_threshold` of `metric`; `min_replicas` 0 lets it
    scale to zero after `scale_to_zero_retention_seconds` without a request."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    metric: str | None = None  # throughput | concurrency | latency | a custom metric's name
    metric_threshold: float | None = Field(default=None, gt=0)
    initialization_timeout_seconds: int | None = Field(default=None, ge=1)
    scale_to_zero_retention_seconds: int | None = Field(default=None, ge=0)

    @property
    def ceiling(self) -> int:
        """The most replicas the server may have (at least one)."""
        return max(self.max_replicas or self.min_replicas, self.min_replicas, 1)

    @property
    def scales(self) -> bool:
        """True when the replica count moves with a metric (else: min_replicas, fixed)."""
        return (self.metric is not None and self.metric_threshold is not None
                and (self.ceiling > self.min_replicas or self.min_replicas == 0))


class TopologyPlacement(Contract):
    """Where a workload's pods go in its node pool's network topology (Run:ai's `topology`):
    each a level of the pool's topology, named by its node label key. `required_placement`:
    every pod inside one domain of that level, else the workload waits; `preferred_placement`:
    the smallest domain with room first, wider level by level."""

    required_placement: str | None = None
    preferred_placement: str | None = None


class EffectiveSpec(Contract):
    """A workload's spec after policy: every default filled in, every rule satisfied."""

    image: str
    command: str | None = None
    args: str | None = None
    environment_variables: list[NameValue] = Field(default_factory=list)
    annotations: list[NameValue] = Field(default_factory=list)
    labels: list[NameValue] = Field(default_factory=list)
    compute: Compute = Field(default_factory=Compute)
    node_pools: list[str] = Field(default_factory=list)
    # The node type the workload runs on: its pods get the node selector
    # fairway.io/node-type=<node_type> (None: any node). Checked against the project's
    # and department's allowed node types at submission.
    node_type: str | None = None
    topology: TopologyPlacement | None = None  # None: anywhere in its node pool
    priority_class: str
    preemptible: bool
    backoff_limit: int = Field(ge=0)
    restart_policy: str = "Never"
    pods: int = Field(default=1, ge=1, description="pods in the gang")
    min_pods: int = Field(default=1, ge=1, description="gang minimum")
    completions: int | None = Field(default=None, ge=1,
                                    description="trainings: pods that must succeed")
    parallelism: int | None = Field(default=None, ge=1)
    distributed_framework: str | None = None
    num_workers: int | None = Field(default=None, ge=1)
    # Elastic distributed: the gang starts with the master and `min_replicas` workers, more
    # join as room appears, up to `num_workers` made; `max_replicas` bounds `num_workers`.
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    master_spec: MasterSpec | None = None  # None: the master is a copy of the workers
    serving_port: ServingPort | None = None
    autoscaling: Autoscaling | None = None
    terminate_after_preemption: bool = False
    auto_deletion_time_after_completion_seconds: int | None = Field(default=None, ge=0)

    @field_validator("serving_port", mode="before")
    @classmethod
    def _bare_port(cls, value: Any) -> Any:
        # Before the object (and in rows kept from then) servingPort was the container port.
        return {"container": value} if isinstance(value, int) and not isinstance(
            value, bool) else value

    def gpus_requested(self, device_memory_mib: int | None = None) -> float:
        """GPUs the whole workload asks for: every pod of its gang (fractions by portion), a
        distributed master sized apart (`master_spec.compute`) at its own size."""
        per_pod = self.compute.gpus_per_pod(device_memory_mib)
        master = self.master_spec.compute if self.master_spec is not None else None
        if master is None:
            return per_pod * self.pods
        return per_pod * (self.pods - 1) + master.gpus_per_pod(device_memory_mib)


def requested_gpus(spec: Mapping[str, Any]) -> float:
    """GPUs one pod of a submitted (API-shaped, camelCase) spec asks for: whole devices, or
    the portion of one on each of them."""
    compute = spec.get("compute") or {}
    devices = compute.get("gpuDevicesRequest") or 0
    portion = compute.get("gpuPortionRequest")
    if portion:
        return portion * max(devices, 1)
    if compute.get("gpuMemoryRequest"):
        return 0  # a share of one device's memory: its portion is known once placed
    return devices


class PodSummary(Contract):
    """What a phase event says about one pod of the workload."""

    name: str
    role: PodRole = PodRole.MAIN
    node: str | None = None
    phase: str = "Pending"
    ready: bool = False
    restarts: int = 0
    gpus: int = 0  # whole devices the pod holds (a fraction holds none: see gpu_portion)
    # Fractions: the devices the pod shares (the scheduler's indices on its node and, once
    # reserved, their UUIDs), its portion of each, the GPU memory it may use on each device
    # and the memory it uses now (as the node reports it; None: not reported).
    gpu_devices: list[int] = Field(default_factory=list)
    gpu_uuids: list[str] = Field(default_factory=list)
    gpu_portion: float | None = None
    gpu_memory_limit_mib: int | None = None
    gpu_memory_used_mib: int | None = None
    # The node-level scheduler (on in the node's pool): the device the fraction's GPU process
    # runs on now, the GPU memory it may use there, and how often its GPU process was
    # restarted to move or to end a burst (empty / None: it never acted on the pod).
    gpu_current_devices: list[int] = Field(default_factory=list)
    gpu_current_memory_limit_mib: int | None = None
    gpu_process_restarts: int | None = None
    # GPU memory swap (on in the node's pool, a swap-capable node): whether its GPU process
    # wants the GPU now, and how much of its GPU memory is in host memory now, as the node
    # reports them (None: the node says nothing; 0: all of it on the device).
    gpu_active: bool | None = None
    gpu_swapped_mib: int | None = None
    # a fraction's GPU utilization as the node reports it (an idle or swapped-out one gets 0)
    gpu_utilization_percent: float | None = None
    node_pool: str | None = None  # the pool of the node it is bound to, as lifecycle knows it

    @property
    def gpu_share(self) -> float:
        """GPUs the pod counts for: whole devices, or its portion of each shared device."""
        if self.gpu_portion is not None:
            return self.gpu_portion * max(len(self.gpu_devices), 1)
        return float(self.gpus)


class WorkloadRef(Contract):
    workload_id: str
    name: str
    project: str
    workload_type: WorkloadType


def utcnow() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)
