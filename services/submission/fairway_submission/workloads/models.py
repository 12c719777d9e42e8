"""The workloads' API models: the four types' request bodies (each field's shape; the checks
that span fields are in `checks`), the batch action and the workload as the API shows it."""

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from fairway_contracts.quantities import SIZE_PATTERN
from fairway_submission.models import NAME, NODE_TYPE, ApiAnswer, ApiModel, NameValue, Timestamp


class Compute(ApiModel):
    gpu_devices_request: int | None = Field(default=None, ge=0, le=64)
    gpu_request_type: Literal["portion", "memory"] | None = None
    gpu_portion_request: float | None = Field(default=None, gt=0, le=1)
    gpu_portion_limit: float | None = Field(default=None, gt=0, le=1)
    gpu_memory_request: str | None = Field(default=None, pattern=SIZE_PATTERN)
    gpu_memory_limit: str | None = Field(default=None, pattern=SIZE_PATTERN)
    cpu_core_request: float | None = Field(default=None, ge=0)
    cpu_core_limit: float | None = Field(default=None, ge=0)
    cpu_memory_request: str | None = Field(default=None, pattern=SIZE_PATTERN)
    cpu_memory_limit: str | None = Field(default=None, pattern=SIZE_PATTERN)


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


class WorkloadCreate(ApiModel):
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


class WorkspaceCreate(WorkloadCreate):
    spec: WorkspaceSpec


class TrainingCreate(WorkloadCreate):
    spec: TrainingSpec


class DistributedCreate(WorkloadCreate):
    spec: DistributedSpec


class InferenceCreate(WorkloadCreate):
    spec: InferenceSpec


class BatchIn(ApiModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    action: Literal["delete", "suspend", "resume"]


class Workload(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    workload_id: str
    name: str
    project_id: str
    project_name: str
    type: str
    created_at: datetime
    created_by: str
    desired_phase: str
    phase: str
    phase_reason: str | None
    phase_message: str | None
    priority_class_name: str
    preemptible: bool
    requested_node_pools: list[str]
    current_node_pools: list[str]
    allocated_resources: dict[str, Any]
    requested_resources: dict[str, Any]
    running_pods: int
    requested_pods: int
    total_pending_time_seconds: float
    total_running_time_seconds: float
    spec: dict[str, Any]


# Responses ----------------------------------------------------------------------------------


class WorkloadList(ApiAnswer):
    workloads: list[Workload]
    total_count: int
    next: int | None = Field(description="the offset of the next page; null on the last")


class PodsOut(ApiAnswer):
    pods: list[dict[str, Any]]


class PhaseChange(ApiAnswer):
    sequence: int
    from_phase: str | None = Field(alias="from")
    to: str
    reason: str | None
    message: str | None
    time: Timestamp


class PhaseHistory(ApiAnswer):
    events: list[PhaseChange]


class BatchResult(ApiAnswer):
    id: str
    code: int = Field(description="202 when accepted; else the status a single request "
                                  "would have answered")
    message: str


class BatchOut(ApiAnswer):
    results: list[BatchResult]
