"""Core-NATS request/reply, the one way a Fairway service asks another and waits for the answer.

`connection(broker)` is the broker's NATS connection (None until it connected), so no caller
reaches into the broker's private attributes. `request` sends with the current trace context
and turns every way of getting no answer into `NoReply`, which the caller maps to its own
error (submission answers 503).
"""

import asyncio
import time

from faststream.exceptions import IncorrectState
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from fairway_telemetry import inject_headers

RETRY_PAUSE = 0.05
"""Between two tries while a connection or a responder moves to another NATS server."""
MOVE_CHECK = 0.05
"""How often an attempt waiting for its reply looks whether its connection moved."""
MIN_ATTEMPT = 0.5
"""The shortest first attempt: below it an answer under load would be asked for twice."""


class NoReply(Exception):
    """Nobody answered a request: not connected, no responder on the subject, or too late."""

    def __init__(self, subject: str, reason: str):
        super().__init__(f"no reply on {subject}: {reason}")
        self.subject = subject
        self.reason = reason

    @property
    def connected(self) -> bool:
        """False when the request never left (no connection to NATS)."""
        return self.reason != "not connected"


def connection(broker: NatsBroker) -> Client | None:
    """The broker's NATS connection, or None before it connected (or after it stopped)."""
    try:
        return broker.connection
    except IncorrectState:
        return None


async def request(nc: Client | None, subject: str, data: bytes, *, timeout: float) -> bytes:
    """Send `data` on `subject` and return the reply's payload; `NoReply` when none comes.

    Within `timeout` it rides out the loss of a NATS server: while the connection moves to
    another server of the cluster it waits for it, and while the responders do too (no
    responders for a moment) it asks again, so a caller sees a failure only when the whole
    timeout passed without an answer. A request or its reply that was on the lost server is
    gone for good, so an attempt is abandoned and sent again when the connection moved while
    it waited, and once more when half the timeout passed without an answer (the loss may have
    been a route between two other servers). Only for requests that are safe to ask twice,
    which every Fairway request is: each asks a question, none changes anything."""
    deadline = time.monotonic() + timeout
    resent_late = False
    while True:
        if nc is None or nc.is_closed or not (nc.is_connected or nc.is_reconnecting):
            raise NoReply(subject, "not connected")
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoReply(subject, f"no answer within {timeout:g} s" if nc.is_connected
                          else "not connected")
        if not nc.is_connected:  # reconnecting: wait for the next server
            await asyncio.sleep(min(RETRY_PAUSE, left))
            continue
        wait = left if resent_late else max(left - timeout / 2, min(left, MIN_ATTEMPT))
        try:
            return await _attempt(nc, subject, data, wait)
        except NoRespondersError:
            if deadline - time.monotonic() <= RETRY_PAUSE:
                raise NoReply(subject, "no responders") from None
            await asyncio.sleep(RETRY_PAUSE)  # responders may be moving to another server
        except _Moved:
            continue
        except (TimeoutError, NatsTimeout):
            if wait >= left:
                raise NoReply(subject, f"no answer within {timeout:g} s") from None
            resent_late = True


class _Moved(Exception):
    """The connection moved to another server while an attempt waited for its reply."""


async def _attempt(nc: Client, subject: str, data: bytes, timeout: float) -> bytes:
    reconnects = nc.stats["reconnects"]
    asked = asyncio.ensure_future(
        nc.request(subject, data, timeout=timeout, headers=inject_headers()))
    try:
        while True:
            done, _ = await asyncio.wait({asked}, timeout=MOVE_CHECK)
            if done:
                return asked.result().data
            if nc.stats["reconnects"] != reconnects or not nc.is_connected:
                raise _Moved
    finally:
        if not asked.done():
            asked.cancel()
            await asyncio.gather(asked, return_exceptions=True)
