"""Metrics settings: only the shared ones for now (NATS_URL, DATABASE_URL, FAIRWAY_HTTP_*...)."""

from fairway_runtime import ServiceSettings


class MetricsSettings(ServiceSettings):
    """The projections need nothing beyond the shared settings; /metrics is the Service's."""
