"""The official client is synchronous: its calls run in a pool of worker threads, so the
event loop never waits on the API server. One wrapper for every caller."""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

import orjson
from kubernetes import client

_URGENT: ContextVar[bool] = ContextVar("fairway_kube_urgent", default=False)


@contextlib.contextmanager
def urgent_calls() -> Iterator[None]:
    """The calls made within (and in tasks started within) go before the others waiting for
    a worker: those that carry out a decision already taken, such as binding pods to the
    room the scheduler holds for them. Under a burst, pod creations for thousands of new
    workloads would otherwise keep the bindings waiting, and the room held for them with."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


class ThreadedCalls:
    """Runs blocking client calls in `workers` threads and answers (status, body): the HTTP
    status (an `ApiException`'s too) and the body parsed as JSON when it is JSON. A call
    waits for a free worker in one of two lines, the urgent one (`urgent_calls`) served
    first."""

    def __init__(self, workers: int, name: str):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._free = workers
        # the urgent line, then the rest: futures resolved when a worker is theirs
        self._lines: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (
            deque(), deque())

    async def run(self, run: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """`run` in a worker thread; its (status, raw data) with the data parsed as JSON."""
        await self._worker()
        try:
            status, data = await asyncio.get_running_loop().run_in_executor(self._pool, run)
        finally:
            self._hand_on()
        return status, parse_body(data)

    async def _worker(self) -> None:
        if self._free and not (self._lines[0] or self._lines[1]):
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._lines[0 if _URGENT.get() else 1].append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._hand_on()  # the worker was handed over as the caller was cancelled
            raise

    def _hand_on(self) -> None:
        """A worker is free: to the first caller waiting (urgent first), else kept."""
        for line in self._lines:
            while line:
                turn = line.popleft()
                if not turn.done():  # a cancelled caller's turn is skipped
                    turn.set_result(None)
                    return
        self._free += 1

    async def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """A generated client method, without its model decoding (`_preload_content=False`);
        an `ApiException` is answered as its status and body. Anything else (connection
        refused, time-out) is raised to the caller, who decides."""
        kwargs["_preload_content"] = False

        def run() -> tuple[int, Any]:
            try:
                response = func(*args, **kwargs)
            except client.exceptions.ApiException as exc:
                return exc.status, exc.body
            return response.status, response.data

        return await self.run(run)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def parse_body(data: Any) -> Any:
    """A response body as JSON when it is JSON, else as it came (None when empty)."""
    if isinstance(data, (bytes, str)):
        if not data:
            return None
        try:
            return orjson.loads(data)
        except ValueError:
            return data
    return data
