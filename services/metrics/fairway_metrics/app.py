"""The metrics service: projections of every event, their Prometheus series on /metrics, the
stored samples and the telemetry queries.

It runs as one instance (see series.py: the series are read from this process's projection,
which sees every event only when it is the only consumer).
"""

from pathlib import Path

from fairway_metrics import handlers
from fairway_metrics.handlers import Metrics, MetricsConsumers, QuerySubjects
from fairway_metrics.settings import MetricsSettings
from fairway_runtime import Service


def build_with_projection(settings: MetricsSettings | None = None, *,
                          consumers: MetricsConsumers | None = None,
                          query_subjects: QuerySubjects | None = None
                          ) -> tuple[Service, Metrics]:
    """The service and its projection's keeper (tests take samples through it). Tests pass
    their own settings, consumers and query subjects."""
    settings = settings or MetricsSettings()
    service = Service("metrics", settings, migrations=Path(__file__).parent / "migrations")
    metrics = handlers.register(service, settings, consumers or MetricsConsumers(),
                                query_subjects or QuerySubjects())
    return service, metrics


def build(settings: MetricsSettings | None = None, *,
          consumers: MetricsConsumers | None = None,
          query_subjects: QuerySubjects | None = None) -> Service:
    """The service, ready to run."""
    return build_with_projection(settings, consumers=consumers,
                                 query_subjects=query_subjects)[0]
