"""What submission remembers between requests: the caller's access, the organisation a
submission reads, the policy service's answers. Each is read from PostgreSQL (or asked of
policy) when missing, then kept for a few seconds.

Staleness is bounded two ways. Every change made through this API forgets everything at once
(`AccessChanges` below, before the answer to the change goes out), so on this replica a deleted
user, a removed rule or a new policy counts from the next request. A change made elsewhere (by
hand in the database, another replica) counts once the entry expires: `ttl` seconds at most.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MISSING = object()


class Remembered[K: Hashable, V]:
    """At most `size` answers, each for `ttl` seconds. `read` fetches a missing one once for
    every request that asks meanwhile (so an answer expiring under load costs one read, not
    one per request waiting). An answer read before a `forget` is not kept after it (it may
    predate the change), and a request after a `forget` never waits on such a read."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self.generation = 0
        self._entries: dict[K, tuple[float, V]] = {}
        self._reading: dict[K, asyncio.Future[V]] = {}

    async def read(self, key: K, read: Callable[[], Awaitable[V]],
                   keep: Callable[[V], bool] = lambda _: True) -> V:
        """The answer remembered, or `read()` (shared by whoever asks until it is done), kept
        when `keep` says so. A read's error reaches everyone waiting on it; nothing is kept."""
        value = self.get(key)
        if value is not MISSING:
            return value  # type: ignore[return-value]
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(key, read, keep))
            self._reading[key] = reading
        # shielded: a request that goes away does not cancel the others' read
        return await asyncio.shield(reading)

    async def _read(self, key: K, read: Callable[[], Awaitable[V]],
                    keep: Callable[[V], bool]) -> V:
        generation = self.generation
        try:
            value = await read()
        finally:
            if self._reading.get(key) is asyncio.current_task():
                del self._reading[key]
        if keep(value):
            self.keep(key, value, generation)
        return value

    def get(self, key: K) -> V | object:
        """The answer, or MISSING (never kept, expired, or forgotten)."""
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        if entry[0] <= self.clock():
            del self._entries[key]
            return MISSING
        return entry[1]

    def keep(self, key: K, value: V, generation: int, ttl: float | None = None) -> None:
        if generation != self.generation:
            return
        entries = self._entries
        if key not in entries and len(entries) >= self.size:
            del entries[next(iter(entries))]  # the oldest kept
        entries[key] = (self.clock() + (self.ttl if ttl is None else ttl), value)

    def forget(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._reading.clear()  # reads under way finish for their waiters only


class AccessChanges:
    """ASGI middleware: a request that may change users, access rules, the organisation or a
    policy (any method but GET and HEAD, outside workloads and tokens) makes `forget` run as its
    answer starts, after its transaction committed and before the client can ask again."""

    UNCHANGING = ("/api/v1/workloads", "/api/v1/token",
                  # the console's sign-in and workload forms (its organisation forms do count)
                  "/sign-in", "/sign-out", "/submit", "/workloads/")

    def __init__(self, app: App, forget: Callable[[], None]):
        self.app = app
        self.forget = forget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in ("GET", "HEAD")
                or scope["path"].startswith(self.UNCHANGING)):
            await self.app(scope, receive, send)
            return
        forget = self.forget

        async def forgetting(message: Message) -> None:
            if message["type"] == "http.response.start":
                forget()
            await send(message)

        try:
            await self.app(scope, receive, forgetting)
        finally:
            forget()  # also when no answer went out (the connection dropped)
