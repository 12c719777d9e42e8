"""What submission remembers between requests: the caller's access, the organisation a
submission reads, the policy service's answers. Each is read from PostgreSQL (or asked of
policy) when missing, then kept for a few seconds.

Staleness is bounded two ways. Every change made through this API forgets everything at once
(`AccessChanges` below, before the answer to the change goes out), so on this replica a deleted
user, a removed rule or a new policy counts from the next request. A change made elsewhere (by
hand in the database, another replica) counts once the entry expires: `ttl` seconds at most.
"""

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
    """At most `size` answers, each for `ttl` seconds. `generation` before a read, `keep` with
    it after: an answer read before a `forget` is not kept after it (it may predate the
    change)."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self.generation = 0
        self._entries: dict[K, tuple[float, V]] = {}

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


class AccessChanges:
    """ASGI middleware: a request that may change users, access rules, the organisation or a
    policy (any method but GET and HEAD, outside workloads and tokens) makes `forget` run as its
    answer starts, after its transaction committed and before the client can ask again."""

    UNCHANGING = ("/api/v1/workloads", "/api/v1/token")

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
