"""The scheduler service: node inventory, workload requests and their pods in; bind decisions
out, from a cycle that runs every FAIRWAY_SCHEDULER_CYCLE_SECONDS and soon after any change.

With leader election on (see `leader`), any number of instances run and only the holder of
the Lease consumes and decides; the others stand by. Off, this instance is the only one."""

from pathlib import Path

from fairway_runtime import Service
from fairway_scheduler import handlers
from fairway_scheduler.cycle import Scheduler
from fairway_scheduler.handlers import SchedulerConsumers
from fairway_scheduler.leader import LEADER, Leadership, LeaseLock, LeaseTimings
from fairway_scheduler.settings import SchedulerSettings


def build(settings: SchedulerSettings | None = None, *,
          consumers: SchedulerConsumers | None = None) -> Service:
    """The service, ready to run. Tests pass their own settings and consumers."""
    settings = settings or SchedulerSettings()
    service = Service("scheduler", settings, migrations=Path(__file__).parent / "migrations")
    scheduler = Scheduler(service, settings)
    handlers.register(service, scheduler, consumers or SchedulerConsumers())
    if settings.elect_leader():
        lock = LeaseLock(settings.lease_namespace_or_default(), settings.lease_name,
                         settings.kubeconfig,
                         request_timeout=settings.lease_retry_seconds * 2)
        leadership = Leadership(service, scheduler, lock, LeaseTimings(
            lease_seconds=settings.lease_seconds,
            renew_seconds=settings.lease_renew_seconds,
            renew_deadline_seconds=settings.lease_renew_deadline_seconds,
            retry_seconds=settings.lease_retry_seconds))
        service.on_start(leadership.start)
        service.on_stop(leadership.stop)
    else:
        LEADER.set(1)
        service.on_start(scheduler.start)
    return service
