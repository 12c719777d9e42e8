"""List, then watch from the list's resourceVersion; re-list and diff on 410 or a lost stream.

Runs in a thread (the official client is synchronous) and hands every change to a callback as
`(event_type, object_dict)`: ADDED, MODIFIED or DELETED, in the order the API server sent them.
After a re-list the watcher diffs what it knew with what it listed, so the consumer sees a
DELETED for an object that vanished while it was not watching. Objects are plain dicts, the JSON
the API server sent, so consumers (and the phase fold) see exactly what a replay file holds.
"""

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("fairway.kube.watch")

Handler = Callable[[str, dict[str, Any]], None]


class Gone(Exception):
    """The resourceVersion we resume from is older than the server keeps."""


class ListWatcher:
    def __init__(
        self,
        list_func: Callable[..., Any],
        handler: Handler,
        *,
        name: str,
        label_selector: str | None = None,
        resync_seconds: float = 300.0,
        watch_timeout_seconds: int = 240,
        on_synced: Callable[[], None] | None = None,
    ):
        self.list_func = list_func
        self.handler = handler
        self.name = name
        self.label_selector = label_selector
        self.resync_seconds = resync_seconds
        self.watch_timeout_seconds = watch_timeout_seconds
        self.on_synced = on_synced
        self.known: dict[str, dict[str, Any]] = {}  # uid -> last object seen
        self.resource_version: str | None = None
        self.relists = 0
        self._stop = threading.Event()
        self._relist_due = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._end_response()

    def relist(self) -> None:
        """List everything again now (ends the watch in hand), then watch on; `on_synced` is
        called once the list is handled."""
        self._relist_due.set()
        self._end_response()

    def _end_response(self) -> None:
        """End the list or watch in hand (its thread then sees why: stop, or relist)."""
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:
                try:
                    response.close()
                except Exception:
                    pass

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # internals --------------------------------------------------------------------------
    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"_preload_content": False}
        if self.label_selector:
            kwargs["label_selector"] = self.label_selector
        return kwargs

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._relist_due.clear()
                self._relist()
                listed_at = time.monotonic()
                backoff = 0.2
                while not self._stop.is_set() and not self._relist_due.is_set():
                    self._watch_once()
                    if time.monotonic() - listed_at > self.resync_seconds:
                        break  # periodic resync: list again and diff
            except Gone:
                log.info("%s: resourceVersion too old, re-listing", self.name)
                continue
            except Exception as exc:
                if self._stop.is_set():
                    return
                if self._relist_due.is_set():  # relist() cut the watch short
                    continue
                log.warning("%s: watch failed (%r), re-listing in %.1fs", self.name, exc, backoff)
                self._stop.wait(backoff + random.uniform(0, backoff / 2))
                backoff = min(backoff * 2, 10.0)

    def _relist(self) -> None:
        response = self.list_func(**self._kwargs())
        _check(response)
        body = orjson.loads(response.data)
        self.relists += 1
        self.resource_version = body["metadata"]["resourceVersion"]
        seen: set[str] = set()
        for obj in body.get("items") or []:
            uid = obj["metadata"]["uid"]
            seen.add(uid)
            previous = self.known.get(uid)
            if previous is None:
                self._emit("ADDED", obj)
            elif previous["metadata"].get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self._emit("MODIFIED", obj)
        for uid in [u for u in self.known if u not in seen]:
            self._emit("DELETED", self.known[uid])
        if self.on_synced is not None:
            self.on_synced()

    def _watch_once(self) -> None:
        response = self.list_func(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout_seconds,
            **self._kwargs(),
        )
        self._response = response
        _check(response)
        got_any = False
        try:
            for line in _lines(response):
                if self._stop.is_set() or self._relist_due.is_set():
                    return
                if not line:
                    continue
                event = orjson.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                got_any = True
                self.resource_version = obj.get("metadata", {}).get(
                    "resourceVersion", self.resource_version
                )
                if kind == "BOOKMARK":
                    continue
                self._emit(kind, obj)
        except ApiException as exc:
            if exc.status == 410:
                raise Gone() from exc
            raise
        finally:
            self._response = None
            response.release_conn()
        if not got_any:
            # An empty stream can also mean a stale version: back off a little.
            self._stop.wait(0.2)

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        uid = obj.get("metadata", {}).get("uid")
        if uid:
            if kind == "DELETED":
                self.known.pop(uid, None)
            else:
                self.known[uid] = obj
        try:
            self.handler(kind, obj)
        except Exception:
            log.exception("%s: handler failed for %s event", self.name, kind)


def _lines(response: Any) -> Iterator[bytes]:
    """The stream's lines, as bytes (orjson.loads takes them as they are). One split per chunk:
    the client's `iter_resp_lines` copies the rest of its buffer for every line, which is
    quadratic in the events a chunk carries, and a busy API server sends hundreds at once."""
    tail = b""
    for chunk in response.stream(amt=None, decode_content=False):
        if not chunk:
            continue
        lines = (tail + chunk if tail else chunk).split(b"\n")
        tail = lines.pop()
        yield from lines


def _check(response: Any) -> None:
    status = getattr(response, "status", 200)
    if isinstance(status, int) and not 200 <= status <= 299:
        if status == 410:
            raise Gone()
        raise ApiException(status=status, reason=str(getattr(response, "data", b""))[:200])
