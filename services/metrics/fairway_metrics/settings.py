"""Metrics settings: the shared ones (NATS_URL, DATABASE_URL, FAIRWAY_HTTP_*...) and sampling."""

from pydantic import Field

from fairway_runtime import ServiceSettings


class MetricsSettings(ServiceSettings):
    """How often samples are stored and kept, and the queue group answering queries."""

    sample_interval_seconds: float = Field(
        default=15.0, gt=0, alias="FAIRWAY_METRICS_SAMPLE_INTERVAL_SECONDS",
        description="how often project, department and node-pool samples are stored")
    sample_retention_hours: float = Field(
        default=24.0 * 14, gt=0, alias="FAIRWAY_METRICS_SAMPLE_RETENTION_HOURS",
        description="samples older than this are deleted")
    query_queue_group: str = Field(
        default="metrics", alias="FAIRWAY_METRICS_QUERY_GROUP",
        description="the NATS queue group of telemetry and series queries (instances in one "
                    "group share the queries)")
