"""A body over the limit, sent over a real connection, gets its whole 413 answer: the server
reads and drops the rest of the body before it answers and closes, so the kernel does not
reset the connection under the answer (which a client that sends its whole body before it
reads the answer, as most do, saw as a broken connection about half the time)."""

import asyncio
from collections.abc import Iterator

import pytest
import requests
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Route

from fairway_submission.body_limit import BodyLimit
from tests.submission.conftest import served

LIMIT = 1024
TRIES = 60


async def echo_size(scope, receive, send) -> None:
    """An app that reads the whole body and answers its size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def streamed(size: int) -> Iterator[bytes]:  # (requests sends a generator chunked)
    for _ in range(size // 65536):
        yield b"x" * 65536


def answers(url: str, body) -> list[str]:
    """What each try got: the 413's message, or the error the client saw."""
    out = []
    for _ in range(TRIES):
        try:
            r = requests.post(url, data=body() if callable(body) else body, timeout=20)
            out.append(f"{r.status_code} {r.json().get('message', '')}")
        except requests.RequestException as e:
            out.append(f"error {e!r}"[:160])
    return out


@pytest.mark.parametrize("body", [b"x" * (4 << 20), lambda: streamed(4 << 20)],
                         ids=["declared", "streamed"])
async def test_a_body_over_the_limit_always_gets_its_whole_413(body):
    async def size(request):
        return JSONResponse({"size": len(await request.body())})

    async def refused(request, exc: HTTPException):
        return JSONResponse({"message": exc.detail}, status_code=exc.status_code)

    app = Starlette(routes=[Route("/", size, methods=["POST"])],
                    exception_handlers={HTTPException: refused})
    async with served(BodyLimit(app, LIMIT)) as url:
        got = await asyncio.to_thread(answers, url, body)
    refusal = "413 the request body is larger than the API takes (1,024 bytes)"
    wrong = [a for a in got if a != refusal]
    assert not wrong, f"{len(wrong)} of {TRIES}: {wrong[:3]}"


async def test_a_body_within_the_limit_is_read_whole():
    async with served(BodyLimit(echo_size, LIMIT)) as url:
        r = await asyncio.to_thread(requests.post, url, data=b"x" * LIMIT, timeout=20)
    assert (r.status_code, r.text) == (200, str(LIMIT))
