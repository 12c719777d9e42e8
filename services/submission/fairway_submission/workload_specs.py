"""The four workload types' request bodies and the checks that span fields. Pure.

The models check each field's shape; `check_spec` then lists every problem that involves more
than one field (a GPU fraction and its request type, a limit below its request, a distributed
workload without workers…), each with its field path. Policy (over the bus) decides defaults
and rules after that.
"""

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from fairway_contracts import WorkloadType
from fairway_submission.domain import NAME, ApiModel, NameValue
from fairway_submission.organisation import NODE_TYPE

QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|[KMGTP]i?)?$"
_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def quantity(value: str) -> float:
    match = re.match(r"^([0-9]+(?:\.[0-9]+)?)(.*)$", value)
    if not match or match[2] not in _UNITS:
        raise ValueError(value)
    return float(match[1]) * _UNITS[match[2]]


class Compute(ApiModel):
    gpu_devices_request: int | None = Field(default=None, ge=0, le=64)
    gpu_request_type: Literal["portion", "memory"] | None = None
    gpu_portion_request: float | None = Field(default=None, gt=0, le=1)
    gpu_portion_limit: float | None = Field(default=None, gt=0, le=1)
    gpu_memory_request: str | None = Field(default=None, pattern=QUANTITY)
    gpu_memory_limit: str | None = Field(default=None, pattern=QUANTITY)
    cpu_core_request: float | None = Field(default=None, ge=0)
    cpu_core_limit: float | None = Field(default=None, ge=0)
    cpu_memory_request: str | None = Field(default=None, pattern=QUANTITY)
    cpu_memory_limit: str | None = Field(default=None, pattern=QUANTITY)


class CommonSpec(ApiModel):
    image: str = Field(min_length=1)
    command: str | None = None
    args: str | None = None
    environment_variables: list[NameValue] = Field(default_factory=list)
    annotations: list[NameValue] = Field(default_factory=list)
    labels: list[NameValue] = Field(default_factory=list)
    compute: Compute = Field(default_factory=Compute)
    node_pools: list[str] = Field(default_factory=list)
    node_type: str | None = Field(default=None, pattern=NODE_TYPE)  # a node label value
    priority_class: str | None = None
    preemptibility: Literal["preemptible", "non-preemptible"] | None = None
    backoff_limit: int | None = Field(default=None, ge=0, le=100)
    restart_policy: Literal["Never", "OnFailure", "Always"] | None = None
    terminate_after_preemption: bool | None = None
    auto_deletion_time_after_completion_seconds: int | None = Field(default=None, ge=0)

    @field_validator("image")
    @classmethod
    def image_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class WorkspaceSpec(CommonSpec):
    pass


class TrainingSpec(CommonSpec):
    completions: int | None = Field(default=None, ge=1)
    parallelism: int | None = Field(default=None, ge=1)


class MasterSpec(ApiModel):
    image: str | None = None
    command: str | None = None
    args: str | None = None
    environment_variables: list[NameValue] = Field(default_factory=list)
    compute: Compute = Field(default_factory=Compute)


class DistributedSpec(CommonSpec):
    distributed_framework: Literal["MPI", "PyTorch", "TF", "XGBoost", "JAX"] = "PyTorch"
    num_workers: int | None = Field(default=None, ge=0, le=1000)
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    master_spec: MasterSpec | None = None
    master_spec_same_as_worker: bool = True


class Autoscaling(ApiModel):
    min_replicas: int = Field(default=1, ge=1, le=1000)
    max_replicas: int | None = Field(default=None, ge=1, le=1000)
    metric: Literal["throughput", "concurrency", "latency"] | None = None
    metric_threshold: float | None = Field(default=None, gt=0)


class InferenceSpec(CommonSpec):
    serving_port: int | None = Field(default=None, ge=1, le=65535)
    autoscaling: Autoscaling | None = None


class _Create(ApiModel):
    name: str = Field(min_length=1, max_length=40)
    project_id: str = Field(min_length=1)
    cluster_id: str | None = None
    use_given_name_as_prefix: bool = False

    @field_validator("name")
    @classmethod
    def dns_name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("must be lowercase letters, digits and '-', starting with a letter")
        return value


class WorkspaceCreate(_Create):
    spec: WorkspaceSpec


class TrainingCreate(_Create):
    spec: TrainingSpec


class DistributedCreate(_Create):
    spec: DistributedSpec


class InferenceCreate(_Create):
    spec: InferenceSpec


# /workloads/<plural> ↔ workload type
PLURALS: dict[str, WorkloadType] = {
    "workspaces": WorkloadType.WORKSPACE,
    "trainings": WorkloadType.TRAINING,
    "distributed": WorkloadType.DISTRIBUTED,
    "inferences": WorkloadType.INFERENCE,
}
PLURAL_OF = {t: p for p, t in PLURALS.items()}

Problems = list[dict[str, str]]


def check_compute(compute: Compute, at: str = "spec.compute") -> Problems:
    problems: Problems = []

    def add(field: str, reason: str) -> None:
        problems.append({"field": f"{at}.{field}", "reason": reason})

    kind = compute.gpu_request_type
    portion, memory = compute.gpu_portion_request, compute.gpu_memory_request
    if portion is not None and memory is not None:
        add("gpuMemoryRequest", "give a GPU portion or GPU memory, not both")
    if portion is not None and kind == "memory":
        add("gpuRequestType", "is 'memory' but gpuPortionRequest is set; use 'portion'")
    if memory is not None and kind == "portion":
        add("gpuRequestType", "is 'portion' but gpuMemoryRequest is set; use 'memory'")
    if kind == "portion" and portion is None:
        add("gpuPortionRequest", "is required when gpuRequestType is 'portion'")
    if kind == "memory" and memory is None:
        add("gpuMemoryRequest", "is required when gpuRequestType is 'memory'")
    if compute.gpu_portion_limit is not None:
        if portion is None:
            add("gpuPortionLimit", "needs a gpuPortionRequest")
        elif compute.gpu_portion_limit < portion:
            add("gpuPortionLimit", f"must be at least gpuPortionRequest ({portion:g})")
    _limit_not_below(add, "gpuMemory", memory, compute.gpu_memory_limit)
    _limit_not_below(add, "cpuMemory", compute.cpu_memory_request, compute.cpu_memory_limit)
    if (compute.cpu_core_request is not None and compute.cpu_core_limit is not None
            and compute.cpu_core_limit < compute.cpu_core_request):
        add("cpuCoreLimit", f"must be at least cpuCoreRequest ({compute.cpu_core_request:g})")
    return problems


def _limit_not_below(add, name: str, request: str | None, limit: str | None) -> None:
    if request is None or limit is None:
        return
    if quantity(limit) < quantity(request):
        add(f"{name}Limit", f"must be at least {name}Request ({request})")


def check_spec(workload_type: WorkloadType, spec: CommonSpec) -> Problems:
    """Every problem that spans fields, by field path."""
    problems = check_compute(spec.compute)
    for i, pool in enumerate(spec.node_pools):
        if spec.node_pools.index(pool) != i:
            problems.append({"field": f"spec.nodePools[{i}]",
                             "reason": f"{pool!r} is listed twice"})
    if isinstance(spec, DistributedSpec):
        if not spec.num_workers:
            problems.append({"field": "spec.numWorkers",
                             "reason": "a distributed workload needs at least one worker"})
        if (spec.min_replicas is not None and spec.max_replicas is not None
                and spec.max_replicas < spec.min_replicas):
            problems.append({"field": "spec.maxReplicas",
                             "reason": f"must be at least minReplicas ({spec.min_replicas})"})
        if spec.num_workers and spec.min_replicas and spec.min_replicas > spec.num_workers:
            problems.append({"field": "spec.minReplicas",
                             "reason": f"must be at most numWorkers ({spec.num_workers})"})
        if spec.master_spec is not None:
            problems += check_compute(spec.master_spec.compute, "spec.masterSpec.compute")
            if spec.master_spec_same_as_worker:
                problems.append({"field": "spec.masterSpec",
                                 "reason": "is ignored while masterSpecSameAsWorker is true; "
                                           "set it to false"})
    if isinstance(spec, InferenceSpec) and spec.autoscaling is not None:
        a = spec.autoscaling
        if a.max_replicas is not None and a.max_replicas < a.min_replicas:
            problems.append({"field": "spec.autoscaling.maxReplicas",
                             "reason": f"must be at least minReplicas ({a.min_replicas})"})
        if (a.metric is None) != (a.metric_threshold is None) and a.max_replicas not in (
                None, a.min_replicas):
            problems.append({"field": "spec.autoscaling.metricThreshold",
                             "reason": "autoscaling needs both metric and metricThreshold"})
    if isinstance(spec, TrainingSpec) and spec.parallelism and spec.completions \
            and spec.parallelism > spec.completions:
        problems.append({"field": "spec.parallelism",
                         "reason": f"must be at most completions ({spec.completions})"})
    return problems


def requested_gpus(spec: dict[str, Any]) -> float:
    """GPUs one pod asks for: whole devices, or the portion of one."""
    compute = spec.get("compute") or {}
    devices = compute.get("gpuDevicesRequest") or 0
    portion = compute.get("gpuPortionRequest")
    if portion:
        return portion * max(devices, 1)
    return devices
