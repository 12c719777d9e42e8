"""The workloads' API models: the four types' request bodies (each field's shape; the checks
that span fields are in `checks`), the batch action and the workload as the API shows it."""

import shlex
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from fairway_contracts.kubernetes_names import (
    ANNOTATIONS_TOTAL_MAX,
    DNS_SUBDOMAIN_PATTERN,
    IMAGE_MAX,
    image_problem,
    label_value_problem,
    qualified_name_problem,
)
from fairway_contracts.quantities import SIZE_PATTERN, parse_quantity
from fairway_submission.models import (
    NAME,
    NODE_TYPE,
    ApiAnswer,
    ApiModel,
    EnvironmentVariable,
    NameValue,
    Timestamp,
)

NODE_POOL = DNS_SUBDOMAIN_PATTERN


# Bounds a real node can meet; anything above is a mistake, refused before it waits for ever.
MAX_CPU_CORES = 1024
MAX_QUANTITY_BYTES = 2**50  # 1 PiB of memory or GPU memory
MAX_PODS = 1000  # pods of one workload (parallelism, workers, replicas)
INT32_MAX = 2**31 - 1  # Kubernetes' own integer fields
QUANTITY = Field(default=None, pattern=SIZE_PATTERN, max_length=32)
# A custom autoscaling metric is named as Prometheus names its series.
METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


def _bounded_quantity(value: str | None) -> str | None:
    if value is not None and parse_quantity(value) > MAX_QUANTITY_BYTES:
        raise ValueError("must be at most 1Pi")
    return value


def _splittable(value: str) -> str:
    """Command and arguments are split as a shell would; an unterminated quote cannot be."""
    try:
        shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot be split into arguments: {exc}") from None
    return value


def _image_reference(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if problem := image_problem(value):
        raise ValueError(problem)
    return value


# A command line and an image, as the main container and a distributed master both take them.
Arguments = Annotated[str, Field(max_length=16384), AfterValidator(_splittable)]
Image = Annotated[str, Field(min_length=1, max_length=IMAGE_MAX),
                  AfterValidator(_image_reference)]


class Compute(ApiModel):
    gpu_devices_request: int | None = Field(default=None, ge=0, le=64)
    gpu_request_type: Literal["portion", "memory"] | None = None
    gpu_portion_request: float | None = Field(default=None, gt=0, le=1)
    gpu_portion_limit: float | None = Field(default=None, gt=0, le=1)
    gpu_memory_request: str | None = QUANTITY
    gpu_memory_limit: str | None = QUANTITY
    cpu_core_request: float | None = Field(default=None, ge=0, le=MAX_CPU_CORES)
    cpu_core_limit: float | None = Field(default=None, ge=0, le=MAX_CPU_CORES)
    cpu_memory_request: str | None = QUANTITY
    cpu_memory_limit: str | None = QUANTITY

    @field_validator("gpu_memory_request", "gpu_memory_limit", "cpu_memory_request",
                     "cpu_memory_limit")
    @classmethod
    def bounded(cls, value: str | None) -> str | None:
        return _bounded_quantity(value)


def _label_key(value: str | None) -> str | None:
    if value is not None and (problem := qualified_name_problem(value)):
        raise ValueError(problem)
    return value


TopologyLevelKey = Annotated[str, Field(min_length=1, max_length=317), AfterValidator(_label_key)]


class Topology(ApiModel):
    """Where the pods go in the node pool's network topology: each a level of it, named by its
    node label key. `requiredPlacement`: every pod inside one domain of that level (else the
    workload waits); `preferredPlacement`: the smallest domain with room first, then wider."""

    required_placement: TopologyLevelKey | None = None
    preferred_placement: TopologyLevelKey | None = None


class CommonSpec(ApiModel):
    image: Image
    command: Arguments | None = None
    args: Arguments | None = None
    environment_variables: list[EnvironmentVariable] = Field(default_factory=list,
                                                             max_length=256)
    annotations: list[NameValue] = Field(default_factory=list, max_length=256)
    labels: list[NameValue] = Field(default_factory=list, max_length=64)
    compute: Compute = Field(default_factory=Compute)
    node_pools: list[Annotated[str, Field(pattern=NODE_POOL, max_length=63)]] = Field(
        default_factory=list, max_length=32)
    node_type: str | None = Field(default=None, pattern=NODE_TYPE)  # a node label value
    topology: Topology | None = None
    priority_class: str | None = Field(default=None, pattern=NODE_POOL, max_length=253)
    preemptibility: Literal["preemptible", "non-preemptible"] | None = None
    backoff_limit: int | None = Field(default=None, ge=0, le=100)
    restart_policy: Literal["Never", "OnFailure", "Always"] | None = None
    terminate_after_preemption: bool | None = None
    auto_deletion_time_after_completion_seconds: int | None = Field(default=None, ge=0,
                                                                    le=INT32_MAX)

    @field_validator("labels")
    @classmethod
    def label_rules(cls, labels: list[NameValue]) -> list[NameValue]:
        for i, label in enumerate(labels):
            if problem := qualified_name_problem(label.name):
                raise ValueError(f"labels[{i}].name {label.name!r}: {problem}")
            if problem := label_value_problem(label.value):
                raise ValueError(f"labels[{i}].value {label.value!r}: {problem}")
        return labels

    @field_validator("annotations")
    @classmethod
    def annotation_rules(cls, annotations: list[NameValue]) -> list[NameValue]:
        for i, annotation in enumerate(annotations):
            if problem := qualified_name_problem(annotation.name):
                raise ValueError(f"annotations[{i}].name {annotation.name!r}: {problem}")
        total = sum(len(a.name.encode()) + len(a.value.encode()) for a in annotations)
        if total > ANNOTATIONS_TOTAL_MAX:
            raise ValueError(f"add up to {total:,} bytes; Kubernetes takes at most "
                             f"{ANNOTATIONS_TOTAL_MAX:,}")
        return annotations


class WorkspaceSpec(CommonSpec):
    pass


class TrainingSpec(CommonSpec):
    completions: int | None = Field(default=None, ge=1, le=MAX_PODS)
    parallelism: int | None = Field(default=None, ge=1, le=MAX_PODS)


class MasterSpec(ApiModel):
    image: Image | None = None
    command: Arguments | None = None
    args: Arguments | None = None
    environment_variables: list[EnvironmentVariable] = Field(default_factory=list,
                                                             max_length=256)
    # None: the workers' compute. A compute that names no field is none at all (`{}`).
    compute: Compute | None = None

    @field_validator("compute")
    @classmethod
    def _named_or_none(cls, compute: Compute | None) -> Compute | None:
        return compute if compute is not None and compute.model_fields_set else None


class DistributedSpec(CommonSpec):
    distributed_framework: Literal["MPI", "PyTorch", "TF", "XGBoost", "JAX"] = "PyTorch"
    num_workers: int | None = Field(default=None, ge=0, le=MAX_PODS)
    min_replicas: int | None = Field(default=None, ge=1, le=MAX_PODS)
    max_replicas: int | None = Field(default=None, ge=1, le=MAX_PODS)
    master_spec: MasterSpec | None = None
    master_spec_same_as_worker: bool = True


class Autoscaling(ApiModel):
    """Run:ai's autoscaling; `minReplicas` 0 lets the server scale to zero (throughput and
    concurrency only, checked with the other fields in `checks`)."""

    min_replicas: int = Field(default=1, ge=0, le=MAX_PODS)
    max_replicas: int | None = Field(default=None, ge=1, le=MAX_PODS)
    metric: str | None = Field(
        default=None, pattern=METRIC_NAME, max_length=200,
        description="throughput | concurrency | latency, or a custom metric's name")
    metric_threshold: float | None = Field(default=None, gt=0, le=1e9)
    initialization_timeout_seconds: int | None = Field(default=None, ge=1, le=INT32_MAX)
    scale_to_zero_retention_seconds: int | None = Field(default=None, ge=0, le=INT32_MAX)


def _port_object(value: Any) -> Any:
    # A bare number is the container port: the shape servingPort had before the object.
    return {"container": value} if isinstance(value, int) and not isinstance(
        value, bool) else value


def _bare_port_schema(schema: dict[str, Any]) -> None:
    # The document says what is accepted: a bare number too (the validator makes it the
    # object before the model sees it, which a schema cannot tell by itself).
    schema["anyOf"].insert(1, {"type": "integer", "minimum": 1, "maximum": 65535})


class ServingPort(ApiModel):
    """Run:ai's servingPort. Fairway creates the Service for it and reports the endpoint;
    `authorizationType` and its users and groups are kept and shown, and enforced by the
    ingress or gateway of a real cluster (docs/api.md)."""

    container: int = Field(ge=1, le=65535)
    protocol: Literal["http", "grpc"] = "http"
    authorization_type: Literal["public", "authenticatedUsers",
                                "authorizedUsersOrGroups"] = "public"
    authorized_users: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None, max_length=100)
    authorized_groups: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = (
        Field(default=None, max_length=100))
    cluster_local_access_only: bool = True


class InferenceSpec(CommonSpec):
    serving_port: Annotated[ServingPort | None, BeforeValidator(_port_object)] = Field(
        default=None, description="the object, or a bare number: the container port",
        json_schema_extra=_bare_port_schema)
    autoscaling: Autoscaling | None = None


class WorkloadCreate(ApiModel):
    name: str = Field(min_length=1, max_length=40)
    project_id: str = Field(min_length=1, max_length=20)
    cluster_id: str | None = Field(default=None, max_length=64)
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
    ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1,
                                                                          max_length=500)
    action: Literal["delete", "suspend", "resume"]


class ThirdPartyOwner(ApiModel):
    """The object whose pods a third-party workload groups (its top owner)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    kind: str
    api_version: str
    name: str
    namespace: str
    uid: str
    grouping: str = Field(description="single (pods one by one), gang (all together) or "
                                       "elastic (each replica its own unit, never below "
                                       "minMembers)")
    min_members: int


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
    # Inference servers (None for the other types): where the server answers (Run:ai's
    # `urls`; `endpoint` the first), its autoscaler's replica count and the replicas ready
    # behind its Service, and its load as last read.
    urls: list[str] | None = None
    endpoint: str | None = None
    desired_replicas: int | None = None
    ready_replicas: int | None = None
    serving: dict[str, Any] | None = None
    # Third-party workloads (type thirdParty; None for the others): the top owner's kind
    # (Job, Deployment, StatefulSet, PyTorchJob, Pod ...), its namespace, and the owner.
    kind: str | None = None
    namespace: str | None = None
    owner: ThirdPartyOwner | None = None
    spec: dict[str, Any] = Field(
        description="the effective spec: what runs, with every policy default and rule "
                    "applied (the submitted fields it does not decide, as submitted)")
    submitted_spec: dict[str, Any] = Field(description="the spec as it was submitted")


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


class KubernetesEvent(ApiAnswer):
    pod: str = Field(description="the pod the event is about")
    type: str = Field(description="Normal or Warning")
    reason: str = Field(description="Kubernetes' short reason, e.g. Scheduled, Pulled, "
                                    "Killing, GpuProcessMoved")
    message: str
    count: int = Field(description="how often it happened (Kubernetes folds repeats)")
    first_time: str | None = Field(description="when it first happened (RFC 3339)")
    last_time: str | None = Field(description="when it last happened (RFC 3339)")
    source: str = Field(description="the component that reported it (kubelet, the scheduler, "
                                    "fairway-lifecycle...)")


class KubernetesEvents(ApiAnswer):
    events: list[KubernetesEvent] = Field(
        description="oldest first; at most the newest 500")


class BatchResult(ApiAnswer):
    id: str
    code: int = Field(description="202 when accepted; else the status a single request "
                                  "would have answered")
    message: str


class BatchOut(ApiAnswer):
    results: list[BatchResult]
