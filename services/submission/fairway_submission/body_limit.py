"""Requests larger than the API takes are refused with 413 before they are parsed: by their
Content-Length when they say it, while they stream when they do not (chunked). The limit sits
below what the message bus carries, so an accepted body always reaches the policy service.

What is left of a refused body is read and dropped before the answer goes (up to
`DRAIN_BYTES`, for at most `DRAIN_SECONDS`): a client sends its whole body before it reads
the answer, and a connection closed with data still unread is reset by the kernel, which
throws away the answer the client was sent (it saw a broken connection, not the 413). Over a
loopback connection that was about half of all 4 MiB bodies. A body beyond those bounds is
still refused, and its client may see the connection reset."""

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


DRAIN_BYTES = 32 * 1024 * 1024
DRAIN_SECONDS = 5.0


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than the API takes ({limit:,} bytes)")


class BodyLimit:
    def __init__(self, app: App, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _drain(receive)
            await _refuse(send, self.max_bytes)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if message.get("more_body", False):
                        await _drain(receive)
                    # raised inside the app: its error handlers answer with the error body
                    raise too_large(self.max_bytes)
            return message

        await self.app(scope, limited, send)


async def _drain(receive: Receive) -> None:
    """The rest of the request body read and dropped, within the bounds (see the module)."""
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"code": 413, "message": too_large(limit).detail, "details": []}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
