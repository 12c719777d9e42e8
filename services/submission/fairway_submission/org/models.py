"""Organisation requests and answers: node pools, departments and projects.

Quotas per node pool: GPUs in devices, CPU in cores, memory in MiB. `limit` None or -1 means
no limit of its own; `deserved` and `overQuotaWeight` are never negative (see `checks`).
"""

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from fairway_contracts.kubernetes_names import label_value_problem, qualified_name_problem
from fairway_contracts.quantities import SIZE_PATTERN
from fairway_submission.models import NODE_TYPE, ApiAnswer, ApiModel, Timestamp

ORG_NAME = re.compile(r"^[a-z][-a-z0-9]*$")
ORG_NAME_RULE = "must be lowercase letters, digits and '-', starting with a letter (at most 63)"
RESOURCES = ("gpu", "cpu", "memory")


def _check_name(value: str) -> str:
    if not ORG_NAME.match(value) or len(value) > 63:
        raise ValueError(ORG_NAME_RULE)
    return value


# Larger than any cluster (memory is in MiB: 10**12 is about an exabyte), yet finite: a typo
# cannot make a quota that overflows the scheduler's arithmetic.
MAX_QUOTA = 10**12


def _check_label(value: str | None, field: str) -> str | None:
    """A node pool's label is put on nodes and in node affinities: Kubernetes' rules."""
    if value is None:
        return None
    problem = (qualified_name_problem(value) if field == "label_key"
               else label_value_problem(value))
    if problem:
        raise ValueError(problem)
    return value


class QuotaIn(ApiModel):
    deserved: float = Field(default=0, le=MAX_QUOTA)
    limit: float | None = Field(default=None, le=MAX_QUOTA)
    over_quota_weight: float = Field(default=1, le=10**6)


class PoolRef(ApiModel):
    name: str = Field(min_length=1, max_length=63)


class PoolResourcesIn(ApiModel):
    node_pool: PoolRef
    gpu: QuotaIn = Field(default_factory=QuotaIn)
    cpu: QuotaIn = Field(default_factory=QuotaIn)
    memory: QuotaIn = Field(default_factory=QuotaIn)


# Longest limit accepted: a year, so a typo in units (ms for s) cannot make a limit endless.
MAX_RULE_SECONDS = 366 * 24 * 3600
RuleSeconds = Annotated[int | None, Field(ge=1, le=MAX_RULE_SECONDS)]
NodeTypeName = Annotated[str, Field(pattern=NODE_TYPE)]


class SchedulingRulesIn(ApiModel):
    """Run:ai's scheduling rules, in seconds; null: no limit at this level. Interactive:
    workspaces. Training: trainings and distributed workloads. Inference is not limited."""

    interactive_job_time_limit_seconds: RuleSeconds = None
    interactive_job_max_idle_duration_seconds: RuleSeconds = None
    training_job_time_limit_seconds: RuleSeconds = None
    training_job_max_idle_duration_seconds: RuleSeconds = None


class NodeTypesIn(ApiModel):
    """Node types (values of the node label fairway.io/node-type) each kind of workload may
    pick; empty: any node. `workspace` covers workspaces, `training` trainings and
    distributed workloads."""

    training: list[NodeTypeName] = Field(default_factory=list, max_length=50)
    workspace: list[NodeTypeName] = Field(default_factory=list, max_length=50)


PoolName = Annotated[str, Field(min_length=1, max_length=63)]
OrgName = Annotated[str, Field(min_length=1, max_length=63, pattern=ORG_NAME.pattern)]


class OrgUnitIn(ApiModel):
    name: OrgName
    resources: list[PoolResourcesIn] = Field(default_factory=list, max_length=64)
    default_node_pools: list[PoolName] = Field(default_factory=list, max_length=32)
    scheduling_rules: SchedulingRulesIn | None = None
    node_types: NodeTypesIn | None = None

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))


class DepartmentIn(OrgUnitIn):
    pass


class ProjectIn(OrgUnitIn):
    parent_id: str | None = Field(default=None, max_length=20)


class OrgUnitUpdate(ApiModel):
    """PUT/PATCH body: every field optional; the name cannot change."""

    resources: list[PoolResourcesIn] | None = Field(default=None, max_length=64)
    default_node_pools: list[PoolName] | None = Field(default=None, max_length=32)
    scheduling_rules: SchedulingRulesIn | None = None
    node_types: NodeTypesIn | None = None


class PlacementStrategy(ApiModel):
    gpu: Literal["binpack", "spread"] = "binpack"
    cpu: Literal["binpack", "spread"] = "binpack"


class GpuResourceOptimization(ApiModel):
    swap_enabled: bool = False
    cpu_swap_memory_size: str | None = Field(default=None, pattern=SIZE_PATTERN, max_length=32)
    reserved_gpu_memory_for_swap_operations: str | None = Field(default=None,
                                                                pattern=SIZE_PATTERN,
                                                                max_length=32)
    node_level_scheduler_enabled: bool = False


DURATION_PATTERN = r"^[0-9]+[smhd]$"


class TimeAwareFairnessIn(ApiModel):
    """Time-aware fairness in this pool; a field left out takes the scheduler's cluster
    setting (FAIRWAY_SCHEDULER_TIME_AWARE_FAIRNESS_*)."""

    enabled: bool | None = None
    window_type: Literal["sliding", "tumbling"] | None = None
    window_size: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=16,
                                    description="how far back usage counts, e.g. 7d")
    half_life_period: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=16,
                                         description="usage this old counts half; 0s: no decay")
    k_value: float | None = Field(default=None, ge=0, le=100,
                                  description="how strongly usage corrects the weight")

    @field_validator("window_size")
    @classmethod
    def _window_not_empty(cls, value: str | None) -> str | None:
        if value is not None and int(value[:-1]) == 0:
            raise ValueError("a window must be longer than 0")
        return value


class SchedulingConfiguration(ApiModel):
    time_aware_fairness: TimeAwareFairnessIn | None = None


class TopologyLevel(ApiModel):
    node_label: str = Field(min_length=1, max_length=317)

    @field_validator("node_label")
    @classmethod
    def _label_key(cls, value: str) -> str:
        if problem := qualified_name_problem(value):
            raise ValueError(problem)
        return value


class NetworkTopology(ApiModel):
    """A node pool's network topology: node label keys that say where a node sits, the
    widest level first (zone, block, rack, host)."""

    levels: list[TopologyLevel] = Field(min_length=1, max_length=16)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: list[TopologyLevel]) -> list[TopologyLevel]:
        seen: set[str] = set()
        for i, level in enumerate(levels):
            if level.node_label in seen:
                raise ValueError(f"levels[{i}].nodeLabel {level.node_label!r} is named twice")
            seen.add(level.node_label)
        return levels


def topology_levels(spec: dict[str, Any]) -> list[str]:
    """A stored node pool spec's topology levels (empty: it names none)."""
    topology = spec.get("networkTopology") or {}
    return [level["nodeLabel"] for level in topology.get("levels") or []]


class NodePoolIn(ApiModel):
    name: OrgName
    label_key: str | None = Field(default=None, min_length=1, max_length=253)
    label_value: str | None = Field(default=None, max_length=63)
    placement_strategy: PlacementStrategy = Field(default_factory=PlacementStrategy)
    min_guaranteed_runtime: str | None = Field(default=None, pattern=r"^[0-9]+[smhd]$")
    gpu_resource_optimization: GpuResourceOptimization = Field(
        default_factory=GpuResourceOptimization)
    scheduling_configuration: SchedulingConfiguration | None = None
    network_topology: NetworkTopology | None = None

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _label = field_validator("label_key", "label_value")(
        classmethod(lambda cls, v, info: _check_label(v, info.field_name)))


class NodePoolUpdate(ApiModel):
    label_key: str | None = Field(default=None, min_length=1, max_length=253)
    label_value: str | None = Field(default=None, max_length=63)
    placement_strategy: PlacementStrategy | None = None
    min_guaranteed_runtime: str | None = Field(default=None, pattern=r"^[0-9]+[smhd]$")
    gpu_resource_optimization: GpuResourceOptimization | None = None
    scheduling_configuration: SchedulingConfiguration | None = None
    network_topology: NetworkTopology | None = None

    _label = field_validator("label_key", "label_value")(
        classmethod(lambda cls, v, info: _check_label(v, info.field_name)))

# Responses ----------------------------------------------------------------------------------


class QuotaOut(ApiAnswer):
    deserved: float
    limit: float | None = Field(description="null: no limit of its own")
    over_quota_weight: float


class PoolRefOut(ApiAnswer):
    name: str


class PoolResourcesOut(ApiAnswer):
    node_pool: PoolRefOut
    gpu: QuotaOut
    cpu: QuotaOut
    memory: QuotaOut


class PerResource(ApiAnswer):
    gpu: float
    cpu: float
    memory: float


class PerResourceOptional(ApiAnswer):
    gpu: float | None
    cpu: float | None
    memory: float | None


class PoolStatusOut(ApiAnswer):
    """The scheduler's last figures for the unit's queue in one node pool."""

    node_pool: PoolRefOut
    allocated: PerResource
    allocated_non_preemptible: PerResource
    requested: PerResource
    fair_share: PerResource
    usage: PerResourceOptional | None = Field(
        default=None, description="time-aware fairness on in the pool: the usage that counts "
        "(GPU-seconds, CPU core-seconds, memory MiB-seconds, decayed); fairShare is then the "
        "share its adjusted weight gives")
    adjusted_over_quota_weight: PerResourceOptional | None = Field(
        default=None, description="time-aware fairness on in the pool: the over-quota weight "
        "usage corrected it to (a share of its siblings', 0 to 1+k; null resources did not "
        "compete)")


class UnitStatusOut(ApiAnswer):
    node_pool_resources: list[PoolStatusOut]


class SchedulingRulesOut(ApiAnswer):
    """Only the limits that are set."""

    interactive_job_time_limit_seconds: int | None = None
    interactive_job_max_idle_duration_seconds: int | None = None
    training_job_time_limit_seconds: int | None = None
    training_job_max_idle_duration_seconds: int | None = None


class NodeTypesOut(ApiAnswer):
    training: list[str] = Field(default_factory=list)
    workspace: list[str] = Field(default_factory=list)


class DepartmentOut(ApiAnswer):
    id: str
    name: str
    resources: list[PoolResourcesOut]
    default_node_pools: list[str]
    scheduling_rules: SchedulingRulesOut | None
    node_types: NodeTypesOut | None
    created_at: Timestamp
    updated_at: Timestamp
    status: UnitStatusOut


class ProjectOut(DepartmentOut):
    parent_id: str = Field(description="the department's id")


class DepartmentList(ApiAnswer):
    departments: list[DepartmentOut]
    total_count: int


class ProjectList(ApiAnswer):
    projects: list[ProjectOut]
    next: int | None
    total_count: int


class NodePoolOut(ApiAnswer):
    id: str
    name: str
    label_key: str | None
    label_value: str | None
    placement_strategy: PlacementStrategy
    min_guaranteed_runtime: str | None
    gpu_resource_optimization: dict[str, Any]
    scheduling_configuration: SchedulingConfiguration | None = None
    network_topology: NetworkTopology | None = Field(
        default=None, description="null: the node pool names no topology")
    created_at: Timestamp
    updated_at: Timestamp


class NodePoolList(ApiAnswer):
    node_pools: list[NodePoolOut]
    total_count: int


class DevicePodOut(ApiAnswer):
    name: str
    workload_id: str | None
    workload_name: str | None
    phase: str | None
    gpu_portion: float | None = Field(description="null: the pod holds the whole device")
    counted_here: bool = Field(description="the scheduler counts the pod's request on this "
                                           "device")
    runs_here: bool = Field(description="its GPU process runs on this device now (the "
                                        "node-level scheduler may run it on another)")
    memory_request_mib: int | None
    memory_limit_mib: int | None
    memory_used_mib: int | None = Field(description="as the node reports it, where it runs")
    memory_swapped_mib: int | None = Field(
        default=None, description="GPU memory swap: what of it is in host memory now, as the "
                                  "node reports it (where it runs)")
    gpu_active: bool | None = Field(
        default=None, description="its GPU process wants the GPU now, as the node reports it")
    gpu_process_restarts: int | None


class DeviceOut(ApiAnswer):
    index: int
    memory_mib: int | None
    pods: list[DevicePodOut]
    memory_requested_mib: int = Field(description="the requests counted on the device")
    memory_in_use_mib: int = Field(description="what the pods running on it use")
    memory_swapped_mib: int = Field(
        default=0, description="what the fractions running on it have swapped out to host "
                               "memory (GPU memory swap)")
    utilization_percent: float | None = Field(
        default=None, description="the sum of what the fractions running on it get (null: "
                                  "none reports it)")


class NodeOut(ApiAnswer):
    name: str
    node_pool: str
    ready: bool
    gpus: int
    gpu_product: str | None
    gpu_memory_mib: int | None = None
    allocated_gpus: float
    cpu_millis: int
    memory_mib: int
    devices: list[DeviceOut] = Field(default_factory=list)
    gpu_swap: bool = Field(default=False, description="labelled fairway.io/gpu-swap=true: "
                                                       "its GPU memory may be swapped out")
    swap_host_memory_used_mib: int = Field(
        default=0, description="host memory its fractions' swapped-out GPU memory takes")


class NodeList(ApiAnswer):
    nodes: list[NodeOut]
    total_count: int
