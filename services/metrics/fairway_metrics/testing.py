"""Metrics' test hooks: the service built with its `MetricsService` reachable (tests take
samples through it and read its projection)."""

from pathlib import Path

from fairway_metrics import handlers
from fairway_metrics.service import MetricsConsumers, MetricsService, QuerySubjects
from fairway_metrics.settings import MetricsSettings
from fairway_runtime import Service


def build_for_tests(settings: MetricsSettings, *, consumers: MetricsConsumers | None = None,
                    query_subjects: QuerySubjects | None = None
                    ) -> tuple[Service, MetricsService]:
    """The runtime and its `MetricsService`, reading the given consumers and answering on the
    given query subjects (the contract's when left out)."""
    runtime = Service("metrics", settings, migrations=Path(__file__).parent / "migrations")
    service = MetricsService(runtime, settings, consumers=consumers,
                             query_subjects=query_subjects)
    handlers.register(service)
    return runtime, service
