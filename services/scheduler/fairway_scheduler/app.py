"""The scheduler service: node inventory, workload requests and their pods in; bind and preempt
decisions out, from a cycle that runs every FAIRWAY_SCHEDULER_CYCLE_SECONDS and soon after any
change. Wiring only.

With leader election on (see `leader`), any number of instances run and only the holder of
the Lease consumes and decides; the others stand by. Off, this instance is the only one."""

from pathlib import Path

from fairway_runtime import Service
from fairway_scheduler import handlers
from fairway_scheduler.leader import LEADER, Leadership, LeaseLock, LeaseTimings
from fairway_scheduler.service import SchedulerConsumers, SchedulerService
from fairway_scheduler.settings import SchedulerSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: SchedulerSettings | None = None, *,
          consumers: SchedulerConsumers | None = None) -> Service:
    """The service, ready to run. Tests pass their own settings and consumers."""
    settings = settings or SchedulerSettings()
    runtime = Service("scheduler", settings, migrations=MIGRATIONS)
    wire(runtime, settings, consumers)
    return runtime


def wire(runtime: Service, settings: SchedulerSettings,
         consumers: SchedulerConsumers | None = None) -> SchedulerService:
    """The `SchedulerService` on `runtime`: its handlers registered, and its cycle started
    with the runtime (or with leadership, when elected)."""
    service = SchedulerService(runtime, settings, consumers)
    handlers.register(service)
    if settings.elect_leader():
        lock = LeaseLock(settings.lease_namespace_or_default(), settings.lease_name,
                         settings.kubeconfig,
                         request_timeout=settings.lease_retry_seconds * 2)
        leadership = Leadership(service, lock, LeaseTimings(
            lease_seconds=settings.lease_seconds,
            renew_seconds=settings.lease_renew_seconds,
            renew_deadline_seconds=settings.lease_renew_deadline_seconds,
            retry_seconds=settings.lease_retry_seconds))
        runtime.on_start(leadership.start)
        runtime.on_stop(leadership.stop)
    else:
        LEADER.set(1)
        runtime.on_start(service.start)
    return service
