"""Publishing to JetStream with a deduplication id and trace context on every message."""

from collections.abc import Mapping

from nats.js import JetStreamContext
from nats.js.api import PubAck
from pydantic import BaseModel

from fairway_telemetry import inject_headers


async def publish_model(
    js: JetStreamContext,
    subject: str,
    payload: BaseModel,
    *,
    msg_id: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> PubAck:
    """Publish `payload` once: the stream's duplicate window drops a repeat of `msg_id`.

    When `headers` carry no traceparent, the current trace context is injected.
    """
    carrier = dict(headers or {})
    if "traceparent" not in carrier:
        carrier = inject_headers(carrier)
    carrier["Nats-Msg-Id"] = msg_id
    data = payload.model_dump_json(by_alias=True).encode()
    return await js.publish(subject, data, headers=carrier, timeout=timeout)


async def publish_raw(
    js: JetStreamContext,
    subject: str,
    data: bytes,
    *,
    msg_id: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> PubAck:
    carrier = dict(headers or {})
    carrier["Nats-Msg-Id"] = msg_id
    return await js.publish(subject, data, headers=carrier, timeout=timeout)
