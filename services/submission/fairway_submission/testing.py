"""Submission's test hooks: the service built as in production with its object in reach, the
other services replaced where a test brings its own, and a start without a broker."""

from nats.aio.client import Client

from fairway_bus import request
from fairway_bus.limits import bound_publishes
from fairway_runtime import Service
from fairway_store import create_pool, migrate_dsn
from fairway_submission.app import wire
from fairway_submission.service import Ask, Peers, SubmissionService
from fairway_submission.settings import SubmissionSettings

__all__ = ["Peers", "build_for_tests", "over_connection", "start_without_broker"]


def build_for_tests(settings: SubmissionSettings, peers: Peers | None = None
                    ) -> tuple[Service, SubmissionService]:
    """The runtime and the service object; `peers` stand in for the other services."""
    return wire(settings, peers)


async def start_without_broker(runtime: Service, service: SubmissionService) -> None:
    """Migrate, open the pool and bootstrap: the API answers; no message handler runs."""
    database_url = service.settings.database_url
    await migrate_dsn(database_url, runtime.schema, runtime.migrations)
    runtime.pool = await create_pool(database_url, runtime.schema)
    await service.bootstrap()


def over_connection(nc: Client, prefix: str = "", timeout: float = 5.0) -> Ask:
    """Requests on a NATS connection of the test's own, to services listening under `prefix`
    (bounded like the service's own connection: an oversized message is refused, not sent)."""
    bound_publishes(nc)
    async def ask(subject: str, data: bytes) -> bytes:
        return await request(nc, prefix + subject, data, timeout=timeout)

    return ask
