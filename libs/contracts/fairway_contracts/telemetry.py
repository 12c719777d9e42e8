"""Telemetry queries: the public API (submission) asks the metrics service over NATS
request/reply (core NATS, queue group `metrics`); nobody reads the metrics service's tables.

Shapes follow Run:ai's control-plane API: a telemetry answer is a list of values, each with the
groups it belongs to; a metrics answer is a list of measurements, each a series of timestamped
values.
"""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from fairway_contracts.base import Contract


class TelemetryType(StrEnum):
    WORKLOADS_COUNT = "WORKLOADS_COUNT"
    GPU_ALLOCATION = "GPU_ALLOCATION"
    PENDING_TIME_DISTRIBUTION = "PENDING_TIME_DISTRIBUTION"
    # Per live inference server (a `workload` group each): its autoscaler's replicas, the
    # replicas ready behind its Service, the requests per second arriving at it.
    INFERENCE_DESIRED_REPLICAS = "INFERENCE_DESIRED_REPLICAS"
    INFERENCE_READY_REPLICAS = "INFERENCE_READY_REPLICAS"
    INFERENCE_REQUESTS_PER_SECOND = "INFERENCE_REQUESTS_PER_SECOND"


class TelemetryGroupBy(StrEnum):
    PROJECT = "project"
    DEPARTMENT = "department"
    TYPE = "type"
    NODEPOOL = "nodepool"
    PHASE = "phase"


class MetricType(StrEnum):
    """What the metrics service samples per project, department and node pool."""

    GPU_QUOTA = "GPU_QUOTA"
    GPU_ALLOCATION = "GPU_ALLOCATION"
    GPU_UTILIZATION = "GPU_UTILIZATION"
    GPU_FAIR_SHARE = "GPU_FAIR_SHARE"
    GPU_REQUESTED = "GPU_REQUESTED"
    CPU_QUOTA = "CPU_QUOTA"
    CPU_ALLOCATION = "CPU_ALLOCATION"
    CPU_MEMORY_QUOTA = "CPU_MEMORY_QUOTA"
    CPU_MEMORY_ALLOCATION = "CPU_MEMORY_ALLOCATION"
    GPU_CAPACITY = "GPU_CAPACITY"  # node pools: GPUs on ready nodes


# Pending-time buckets of PENDING_TIME_DISTRIBUTION: (label, upper bound in seconds).
PENDING_TIME_BUCKETS: tuple[tuple[str, float], ...] = (
    ("0-1m", 60), ("1-5m", 300), ("5-15m", 900), ("15-60m", 3600), ("1-6h", 21600),
    ("6h+", float("inf")),
)

Scope = Literal["project", "department", "nodepool"]


class QueryError(Contract):
    """A query the metrics service could not answer: `field` names the bad parameter."""

    field: str
    message: str


class TelemetryQuery(Contract):
    """Current workload telemetry. `project_ids` None: every project; otherwise only these
    (the caller's scope, resolved by submission)."""

    telemetry_type: TelemetryType
    group_by: list[TelemetryGroupBy] = Field(default_factory=list, max_length=2)
    project_ids: list[str] | None = None
    department_id: str | None = None
    node_pool: str | None = None


class TelemetryGroup(Contract):
    key: str
    value: str
    name: str | None = None


class TelemetryValue(Contract):
    value: str
    groups: list[TelemetryGroup] = Field(default_factory=list)


class TelemetryReply(Contract):
    type: TelemetryType
    timestamp: datetime
    values: list[TelemetryValue] = Field(default_factory=list)
    error: QueryError | None = None


class MetricsQuery(Contract):
    """Stored samples of one project, department (by id) or node pool (by name) over
    [start, end], reduced to at most `number_of_samples` points per metric."""

    scope: Scope
    scope_id: str
    metric_types: list[MetricType] = Field(min_length=1)
    start: datetime
    end: datetime
    number_of_samples: int = Field(default=20, ge=1, le=1000)


class MetricValue(Contract):
    value: str
    timestamp: datetime


class Measurement(Contract):
    type: MetricType
    labels: dict[str, str] = Field(default_factory=dict)
    values: list[MetricValue] = Field(default_factory=list)


class MetricsReply(Contract):
    measurements: list[Measurement] = Field(default_factory=list)
    error: QueryError | None = None

