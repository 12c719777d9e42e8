"""Policy's settings: only the shared ones for now (NATS_URL, DATABASE_URL, FAIRWAY_HTTP_*...)."""

from fairway_runtime import ServiceSettings


class PolicySettings(ServiceSettings):
    """Evaluation needs nothing beyond the shared settings; policy CRUD (issue 8) adds its own."""
