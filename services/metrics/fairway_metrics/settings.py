"""Metrics settings: the shared ones (NATS_URL, DATABASE_URL, FAIRWAY_HTTP_*...) and sampling."""

from pydantic import Field

from fairway_runtime import ServiceSettings


class MetricsSettings(ServiceSettings):
    """How often samples are stored and kept, how long batches gather, and the queue group
    answering queries."""

    sample_interval_seconds: float = Field(
        default=15.0, gt=0, alias="FAIRWAY_METRICS_SAMPLE_INTERVAL_SECONDS",
        description="how often project, department and node-pool samples are stored")
    sample_retention_hours: float = Field(
        default=24.0 * 14, gt=0, alias="FAIRWAY_METRICS_SAMPLE_RETENTION_HOURS",
        description="samples older than this are deleted")
    batch_pause_seconds: float = Field(
        default=0.25, ge=0, alias="FAIRWAY_METRICS_BATCH_PAUSE_SECONDS",
        description="after a batch of events smaller than a full fetch, wait this long before "
                    "the next, so batches fill (fewer transactions; the figures lag by as much)")
    query_queue_group: str = Field(
        default="metrics", alias="FAIRWAY_METRICS_QUERY_GROUP",
        description="the NATS queue group of telemetry and series queries (instances in one "
                    "group share the queries)")
    refresh_seconds: float = Field(
        default=0.0, ge=0, alias="FAIRWAY_METRICS_REFRESH_SECONDS",
        description="with several replicas (they share the event consumers, each applying "
                    "part of the events to the tables): every replica reads its whole "
                    "projection from the tables this often, so each answers scrapes and "
                    "queries for all events; 0 (one replica): never, its memory sees every "
                    "event")
