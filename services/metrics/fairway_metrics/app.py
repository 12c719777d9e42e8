"""The metrics service: projections of every event, their Prometheus series on /metrics, the
stored samples and the telemetry queries. Wiring only: the runtime, the `MetricsService` and
its handlers.

Replicas: they share the durable consumers (each event applied once, by one of them, to the
tables); with FAIRWAY_METRICS_REFRESH_SECONDS each reads its whole projection from the tables
again that often, so every replica answers scrapes and queries for all events.
"""

from pathlib import Path

from fairway_metrics import handlers
from fairway_metrics.service import MetricsConsumers, MetricsService, QuerySubjects
from fairway_metrics.settings import MetricsSettings
from fairway_runtime import Service

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: MetricsSettings | None = None, *,
          consumers: MetricsConsumers | None = None,
          query_subjects: QuerySubjects | None = None) -> Service:
    """The service, ready to run. Tests pass their own settings, consumers and query
    subjects."""
    settings = settings or MetricsSettings()
    runtime = Service("metrics", settings, migrations=MIGRATIONS)
    handlers.register(MetricsService(runtime, settings, consumers=consumers,
                                     query_subjects=query_subjects))
    return runtime
