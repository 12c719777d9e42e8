"""Submission's message handlers: phase events keep the workload view current."""

from fairway_bus import Delivery, durable_subscriber
from fairway_contracts import streams
from fairway_contracts.events import Heartbeat, PhaseChanged
from fairway_runtime import Service
from fairway_submission import repository as repo
from fairway_submission.health import HEALTH_SUBJECT, Heartbeats
from fairway_telemetry import workload_context


def register(service: Service, heartbeats: Heartbeats) -> None:
    @durable_subscriber(service.broker, streams.SUBMISSION_PHASES, PhaseChanged)
    async def on_phase(event: PhaseChanged, delivery: Delivery) -> None:
        # Idempotent by (workload, sequence): a redelivered transition changes nothing, and an
        # older one arriving late never overwrites a newer phase.
        with workload_context(event.workload_id):
            async with service.pool.acquire() as conn, conn.transaction():
                await repo.apply_phase(conn, event)

    @service.broker.subscriber(HEALTH_SUBJECT, no_reply=True, include_in_schema=False)
    async def on_heartbeat(beat: Heartbeat) -> None:
        heartbeats.record(beat)
