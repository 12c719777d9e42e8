"""The official client is synchronous: its calls run in a pool of worker threads, so the
event loop never waits on the API server. One wrapper for every caller."""

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client


class ThreadedCalls:
    """Runs blocking client calls in `workers` threads and answers (status, body): the HTTP
    status (an `ApiException`'s too) and the body parsed as JSON when it is JSON."""

    def __init__(self, workers: int, name: str):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, run: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
        """`run` in a worker thread; its (status, raw data) with the data parsed as JSON."""
        status, data = await asyncio.get_running_loop().run_in_executor(self._pool, run)
        return status, parse_body(data)

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
            return json.loads(data)
        except ValueError:
            return data
    return data
