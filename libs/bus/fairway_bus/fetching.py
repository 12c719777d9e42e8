"""Messages a fetch has already received, taken without a task each.

nats-py's pull fetch reads every message of a batch through `Subscription.next_msg`, which
makes a task, a timer and a uuid4 (a `getrandom` system call) per message even when the
message is already in the subscription's queue: a fetch of 90 costs 90 of each. A message in
the queue is taken at once here, exactly as `next_msg` takes it (its size off the pending
count, the queue told it is done); only an empty queue goes the library's way, with its
timeout. Written against nats-py 2.x, whose `PullSubscription` keeps its subscription in `_sub`;
a subscription without those parts is left as it is.
"""

import asyncio
import functools
from typing import Any

from nats.aio.msg import Msg


async def _next_ready(sub: Any, library_next: Any, timeout: float | None = 1.0) -> Msg:
    queue: asyncio.Queue = sub._pending_queue
    if not queue.empty() and not sub._conn.is_closed:
        msg = queue.get_nowait()
        sub._pending_size -= len(msg.data)
        queue.task_done()
        return msg
    return await library_next(timeout)


def take_ready_messages(pull_subscription: Any) -> bool:
    """Make the pull subscription's fetches take queued messages directly. False when this
    nats-py keeps its parts elsewhere (nothing changed)."""
    sub = getattr(pull_subscription, "_sub", None)
    if sub is None or not all(hasattr(sub, part) for part in (
            "_pending_queue", "_pending_size", "_conn", "next_msg")):
        return False
    # An attribute of this subscription object only: its class, and every other
    # subscription, keep the library's method.
    sub.next_msg = functools.partial(_next_ready, sub, sub.next_msg)
    return True
