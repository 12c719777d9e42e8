"""Every message Fairway sends fits the server's max payload, by construction.

nats-py checks only the payload against `max_payload`, but the server counts headers too
(trace context, `Nats-Msg-Id`, ...). A message over the limit makes the server answer
`-ERR 'Maximum Payload Violation'` and close the connection, and nats-py treats a closed
connection as final: one oversized reply took a service off the bus for good. `bound_publishes`
wraps a connection's `publish` (which core publishes, requests, replies and JetStream publishes
all go through) so that such a message is refused here, with `MessageTooLarge`, before it
leaves; the connection stays up and the caller decides what the refusal means.
"""

from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client
from nats.errors import MaxPayloadError

# "NATS/1.0\r\n" + one "key: value\r\n" per header + "\r\n", as nats-py writes them.
_HEADER_PREAMBLE = len(b"NATS/1.0\r\n") + len(b"\r\n")


class MessageTooLarge(MaxPayloadError):
    """A message is larger than the NATS server accepts; it was not sent. A kind of nats-py's
    own `MaxPayloadError`, so code that must not import the bus catches both as one."""

    def __init__(self, subject: str, size: int, limit: int):
        super().__init__()
        self.subject = subject
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return (f"a message on {self.subject} is {self.size:,} bytes; the NATS server accepts "
                f"at most {self.limit:,} (payload and headers)")


def message_size(payload: bytes, headers: Mapping[str, Any] | None) -> int:
    """The bytes the server counts against its max payload: payload and header block."""
    if not headers:
        return len(payload)
    block = _HEADER_PREAMBLE + sum(len(f"{k}: {v}\r\n".encode()) for k, v in headers.items())
    return len(payload) + block


def check_fits(subject: str, payload: bytes, headers: Mapping[str, Any] | None,
               limit: int) -> None:
    size = message_size(payload, headers)
    if size > limit:
        raise MessageTooLarge(subject, size, limit)


def bound_publishes(nc: Client) -> Client:
    """Make every publish on `nc` refuse a message the server would refuse (idempotent)."""
    if getattr(nc, "_fairway_bounded", False):
        return nc
    unbounded = nc.publish

    async def publish(subject: str, payload: bytes = b"", reply: str = "",
                      headers: dict[str, str] | None = None) -> None:
        check_fits(subject, payload, headers, nc.max_payload)
        await unbounded(subject, payload, reply, headers)

    nc.publish = publish  # type: ignore[method-assign]
    nc._fairway_bounded = True  # type: ignore[attr-defined]
    return nc


# What a reply's headers (trace context and the like) may take; a payload within
# `reply_limit` always fits with them.
HEADER_ALLOWANCE = 4096


def reply_limit(nc: Client | None) -> int:
    """The largest payload a responder can send back on `nc`, leaving room for headers."""
    limit = nc.max_payload if nc is not None else 1024 * 1024
    return limit - HEADER_ALLOWANCE
