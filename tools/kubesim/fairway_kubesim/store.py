"""The in-memory object store: one global resourceVersion, a bounded event ring per resource.

Everything here is synchronous and runs on the event loop thread, so a write, its new
resourceVersion and the delivery of its watch event to every watcher happen atomically.

Objects are JSON-shaped dicts. A stored object is never mutated: a writer takes a copy
(`Store.copy`), changes it and hands it back. Each stored version keeps its orjson encoding,
which lists and watch events reuse without encoding again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from .errors import already_exists, expired, not_found
from .selectors import Predicate

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
_TYPE_PREFIX = {t: b'{"type":"' + t.encode() + b'","object":' for t in (ADDED, MODIFIED, DELETED)}

Transform = Callable[[str, "Stored"], bytes]

DEFAULT_HISTORY = 20_000
DEFAULT_WATCH_QUEUE = 50_000


def event_line(event_type: str, raw: bytes) -> bytes:
    return _TYPE_PREFIX[event_type] + raw + b"}\n"


class Stored:
    """One version of an object and its JSON encoding."""

    __slots__ = ("obj", "raw")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        # orjson hands back its whole output buffer (16 KiB for a 2 KiB pod): keep an
        # exact-size copy, which is what lets 50,000 pods fit in well under 2 GiB.
        self.raw = bytes(memoryview(orjson.dumps(obj)))


class Event:
    __slots__ = ("line", "prev", "rv", "stored", "type")

    def __init__(self, type_: str, rv: int, stored: Stored, prev: Stored | None) -> None:
        self.type = type_
        self.rv = rv
        self.stored = stored
        self.prev = prev  # the version before a MODIFIED, for selector transitions
        self.line: bytes | None = None

    def encoded(self) -> bytes:
        if self.line is None:
            self.line = event_line(self.type, self.stored.raw)
        return self.line


class Watcher:
    """One open watch: a buffer of encoded event lines and a wake-up flag."""

    def __init__(self, resource: Resource, namespace: str | None, pred: Predicate | None,
                 max_queue: int, transform: Transform | None = None) -> None:
        self.resource = resource
        self.transform = transform  # another encoding of events (kubectl's tables)
        self.namespace = namespace
        self.pred = pred
        self.max_queue = max_queue
        self.limit = max_queue  # raised while the initial state or a replay is queued
        self.buf: list[bytes] = []
        self.wake = asyncio.Event()
        self.closed = False  # no more events will be delivered
        self.overflowed = False

    def matches(self, obj: Mapping[str, Any]) -> bool:
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.pred is None or self.pred(obj)

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        now = self.matches(event.stored.obj)
        type_ = event.type
        if type_ == MODIFIED and event.prev is not None:
            before = self.matches(event.prev.obj)
            if now and not before:
                type_ = ADDED  # moved into the selection
            elif before and not now:
                type_ = DELETED  # moved out of it
            elif not now:
                return
        elif not now:
            return
        if self.transform is not None:
            self._push(self.transform(type_, event.stored))
        elif type_ == event.type:
            self._push(event.encoded())
        else:
            self._push(event_line(type_, event.stored.raw))

    def initial(self, stored: Stored) -> None:
        """A synthetic ADDED for an object that exists when the watch starts."""
        if self.transform is not None:
            self._push(self.transform(ADDED, stored))
        else:
            self._push(event_line(ADDED, stored.raw))

    def _push(self, line: bytes) -> None:
        if len(self.buf) >= self.limit:
            # A watcher that cannot keep up is ended, as the API server does; the client
            # resumes from the last resourceVersion it saw.
            self.overflowed = True
            self.close()
            return
        self.buf.append(line)
        self.wake.set()

    def take(self) -> bytes:
        data = b"".join(self.buf)
        self.buf.clear()
        self.wake.clear()
        self.limit = self.max_queue
        return data

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class Resource:
    """One resource kind: its objects, its event ring and its watchers."""

    def __init__(self, store: Store, plural: str, kind: str, namespaced: bool,
                 api_version: str = "v1", group: str = "", history: int = DEFAULT_HISTORY
                 ) -> None:
        self.store = store
        self.plural = plural
        self.kind = kind
        self.list_kind = kind + "List"
        self.namespaced = namespaced
        self.api_version = api_version
        self.list_api_version = api_version
        self.group = group
        self.items: dict[tuple[str, str], Stored] = {}
        self.history: deque[Event] = deque(maxlen=max(1, history))
        self.compacted_rv = 0  # events at or below this version may have left the ring
        self.watchers: set[Watcher] = set()
        self._ns_names: dict[str, set[str]] = {}  # namespace index: names per namespace

    # reads ---------------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> Stored | None:
        return self.items.get((namespace, name))

    def require(self, namespace: str, name: str) -> Stored:
        stored = self.items.get((namespace, name))
        if stored is None:
            raise not_found(self.plural, name, self.group)
        return stored

    def select(self, namespace: str | None = None, pred: Predicate | None = None
               ) -> list[Stored]:
        """Matching objects in key order (namespace, name), as the API server lists them."""
        items = self.items
        if namespace is not None:
            stores = [items[(namespace, n)] for n in sorted(self._ns_names.get(namespace, ()))]
        else:
            stores = [items[k] for k in sorted(items)]
        if pred is None:
            return stores
        return [stored for stored in stores if pred(stored.obj)]

    def __len__(self) -> int:
        return len(self.items)

    def count(self, namespace: str) -> int:
        return len(self._ns_names.get(namespace, ()))

    # writes --------------------------------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> Stored:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if key in self.items:
            raise already_exists(self.plural, meta["name"], self.group)
        rv = self.store.next_rv()
        meta["resourceVersion"] = str(rv)
        stored = Stored(obj)
        self.items[key] = stored
        self._ns_names.setdefault(key[0], set()).add(key[1])
        self._emit(Event(ADDED, rv, stored, None))
        return stored

    def update(self, obj: dict[str, Any]) -> Stored:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        prev = self.items.get(key)
        if prev is None:
            raise not_found(self.plural, meta["name"], self.group)
        rv = self.store.next_rv()
        meta["resourceVersion"] = str(rv)
        stored = Stored(obj)
        self.items[key] = stored
        self._emit(Event(MODIFIED, rv, stored, prev))
        return stored

    def mutate(self, namespace: str, name: str, change: Callable[[dict[str, Any]], Any]
               ) -> Stored:
        """Copy the current version, apply `change` to the copy and store it."""
        obj = Store.copy(self.require(namespace, name))
        change(obj)
        return self.update(obj)

    def delete(self, namespace: str, name: str, final: dict[str, Any] | None = None) -> Stored:
        """Remove an object; the DELETED event carries `final` (or the last version)."""
        key = (namespace, name)
        prev = self.items.pop(key, None)
        if prev is None:
            raise not_found(self.plural, name, self.group)
        names = self._ns_names.get(namespace)
        if names is not None:
            names.discard(name)
            if not names:
                del self._ns_names[namespace]
        if final is not None:
            obj = final
        else:  # stored objects are never changed: a shallow copy with new metadata will do
            obj = dict(prev.obj)
            obj["metadata"] = dict(prev.obj["metadata"])
        rv = self.store.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        stored = Stored(obj)
        self._emit(Event(DELETED, rv, stored, None))
        return stored

    def load(self, obj: dict[str, Any]) -> Stored:
        """Put an object back as it was (a snapshot restored): no new version, no event."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        stored = Stored(obj)
        self.items[key] = stored
        self._ns_names.setdefault(key[0], set()).add(key[1])
        return stored

    def _emit(self, event: Event) -> None:
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(event)
        for watcher in tuple(self.watchers):
            watcher.offer(event)
        self.store.notify(self, event)

    # watch ---------------------------------------------------------------------------------

    def watch(self, namespace: str | None, pred: Predicate | None, since: int | None,
              max_queue: int = DEFAULT_WATCH_QUEUE, transform: Transform | None = None
              ) -> Watcher:
        """Open a watch. `since=None` starts with synthetic ADDED events for what exists now;
        otherwise every event after `since` is replayed, or 410 if the ring no longer has it.
        """
        watcher = Watcher(self, namespace, pred, max_queue, transform)
        watcher.limit = 1 << 62  # the starting backlog is never "too slow"
        if since is None:
            for stored in self.select(namespace, pred):
                watcher.initial(stored)
        else:
            if since < self.compacted_rv:
                raise expired(f"too old resource version: {since} ({self.compacted_rv})")
            for event in self._events_after(since):
                watcher.offer(event)
        watcher.limit = len(watcher.buf) + max_queue
        self.watchers.add(watcher)
        return watcher

    def _events_after(self, since: int) -> Iterable[Event]:
        history = self.history
        if not history or history[-1].rv <= since:
            return ()
        # Binary search on the ring (versions increase along it).
        lo, hi = 0, len(history)
        while lo < hi:
            mid = (lo + hi) // 2
            if history[mid].rv <= since:
                lo = mid + 1
            else:
                hi = mid
        return [history[i] for i in range(lo, len(history))]

    def unwatch(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)
        watcher.close()

    def close_watchers(self) -> None:
        for watcher in tuple(self.watchers):
            watcher.close()


# Versions skipped at a restore: more than kubesim ever writes between two snapshots.
RESTORE_GAP = 1_000_000


class Store:
    """All resources, sharing one monotonically increasing resourceVersion."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self.rv = 0
        self.history = history
        self.resources: dict[str, Resource] = {}
        self._listeners: list[Callable[[Resource, Event], None]] = []

    def add(self, plural: str, kind: str, namespaced: bool, **kwargs: Any) -> Resource:
        kwargs.setdefault("history", self.history)
        resource = Resource(self, plural, kind, namespaced, **kwargs)
        self.resources[plural] = resource
        return resource

    def __getitem__(self, plural: str) -> Resource:
        return self.resources[plural]

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def listen(self, callback: Callable[[Resource, Event], None]) -> None:
        """Call `callback` synchronously after every write (the kubelet listens to pods)."""
        self._listeners.append(callback)

    def notify(self, resource: Resource, event: Event) -> None:
        for callback in self._listeners:
            callback(resource, event)

    def close_watchers(self) -> None:
        for resource in self.resources.values():
            resource.close_watchers()

    # snapshots -----------------------------------------------------------------------------

    def snapshot(self, kinds: Iterable[str]) -> bytes:
        """Every object of `kinds` and the current resourceVersion, as JSON (the stored
        encodings joined, so a snapshot of thousands of pods costs little)."""
        parts = [b'{"resourceVersion":', str(self.rv).encode(), b',"resources":{']
        for i, plural in enumerate(kinds):
            items = self.resources[plural].items.values()
            parts += [b"," if i else b"", orjson.dumps(plural), b":[",
                      b",".join(stored.raw for stored in items), b"]"]
        parts.append(b"}}")
        return b"".join(parts)

    def restore(self, data: bytes) -> dict[str, list[Stored]]:
        """Load a snapshot: its objects, and versions that continue well after it. Every
        watch from an earlier version answers 410 Gone, so clients list again, as after an
        etcd compaction: a client may have seen versions newer than the snapshot (kubesim
        was killed between two snapshots), and those numbers now mean other changes."""
        snapshot = orjson.loads(data)
        loaded: dict[str, list[Stored]] = {}
        for plural, objs in snapshot["resources"].items():
            resource = self.resources.get(plural)
            if resource is None:
                continue
            loaded[plural] = [resource.load(obj) for obj in objs]
        self.rv = max(self.rv, int(snapshot["resourceVersion"])) + RESTORE_GAP
        for resource in self.resources.values():
            resource.compacted_rv = self.rv
        return loaded

    @staticmethod
    def copy(stored: Stored) -> dict[str, Any]:
        """A deep copy of a stored object, ready to be changed."""
        return orjson.loads(stored.raw)
