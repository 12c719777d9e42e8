"""Policy's settings: only the shared ones (NATS_URL, DATABASE_URL, FAIRWAY_HTTP_*...)."""

from fairway_runtime import ServiceSettings


class PolicySettings(ServiceSettings):
    """Evaluation and policy CRUD need nothing beyond the shared settings (NATS, PostgreSQL)."""
