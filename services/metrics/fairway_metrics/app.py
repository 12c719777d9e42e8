"""The metrics service: workload projections and their Prometheus series on /metrics."""

from pathlib import Path

from fairway_metrics import handlers
from fairway_metrics.handlers import MetricsConsumers
from fairway_metrics.settings import MetricsSettings
from fairway_runtime import Service


def build(settings: MetricsSettings | None = None, *,
          consumers: MetricsConsumers | None = None) -> Service:
    """The service, ready to run. Tests pass their own settings and consumers."""
    service = Service("metrics", settings or MetricsSettings(),
                      migrations=Path(__file__).parent / "migrations")
    handlers.register(service, consumers or MetricsConsumers())
    return service
