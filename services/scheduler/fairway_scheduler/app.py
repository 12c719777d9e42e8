"""The scheduler service: node inventory, workload requests and their pods in; bind decisions
out, from a cycle that runs every FAIRWAY_SCHEDULER_CYCLE_SECONDS and soon after any change."""

from pathlib import Path

from fairway_runtime import Service
from fairway_scheduler import handlers
from fairway_scheduler.cycle import Scheduler
from fairway_scheduler.handlers import SchedulerConsumers
from fairway_scheduler.settings import SchedulerSettings


def build(settings: SchedulerSettings | None = None, *,
          consumers: SchedulerConsumers | None = None) -> Service:
    """The service, ready to run. Tests pass their own settings and consumers."""
    settings = settings or SchedulerSettings()
    service = Service("scheduler", settings, migrations=Path(__file__).parent / "migrations")
    scheduler = Scheduler(service, settings)
    handlers.register(service, scheduler, consumers or SchedulerConsumers())
    service.on_start(scheduler.start)
    return service
