"""The scheduler's test hooks: the service built as `app.build` builds it, with its
`SchedulerService` (state, lock, cycle) reachable; and what the kept-state check reports."""

from fairway_runtime import Service
from fairway_scheduler.app import MIGRATIONS, wire
from fairway_scheduler.service import (
    KEPT_STATE_DIFFERENCES,
    KEPT_STATE_DIFFERS,
    SchedulerConsumers,
    SchedulerService,
)
from fairway_scheduler.settings import SchedulerSettings

__all__ = ["KEPT_STATE_DIFFERENCES", "KEPT_STATE_DIFFERS", "SchedulerConsumers",
           "build_for_tests"]


def build_for_tests(settings: SchedulerSettings, consumers: SchedulerConsumers | None = None
                    ) -> tuple[Service, SchedulerService]:
    """The runtime and its `SchedulerService`, reading `consumers` (the test's own)."""
    runtime = Service("scheduler", settings, migrations=MIGRATIONS)
    return runtime, wire(runtime, settings, consumers)
