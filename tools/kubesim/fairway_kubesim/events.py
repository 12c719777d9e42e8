"""core/v1 Events: what clients create and what the simulated kubelets record.

The store keeps at most `max_events` events; the oldest leave first (with a DELETED watch
event), as the API server's event TTL would remove them.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .objects import new_uid, now_rfc3339
from .store import Resource, Stored

DEFAULT_MAX_EVENTS = 20_000


class EventLog:
    def __init__(self, resource: Resource, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.resource = resource
        self.max_events = max(0, max_events)
        self._order: deque[tuple[str, str, str]] = deque()  # (namespace, name, uid)

    def create(self, obj: dict[str, Any]) -> Stored:
        stored = self.resource.create(obj)
        meta = obj["metadata"]
        self._order.append((meta.get("namespace", ""), meta["name"], meta.get("uid", "")))
        self._trim()
        return stored

    def _trim(self) -> None:
        items = self.resource.items
        while len(self._order) > self.max_events or (
                self._order and len(items) > self.max_events):
            namespace, name, uid = self._order.popleft()
            stored = items.get((namespace, name))
            if stored is not None and stored.obj["metadata"].get("uid") == uid:
                self.resource.delete(namespace, name)

    def record(self, involved: Mapping[str, Any], type_: str, reason: str, message: str,
               component: str = "kubelet", host: str | None = None,
               field_path: str | None = None) -> Stored | None:
        """An event about `involved` (a pod or node) as a kubelet records it."""
        if self.max_events == 0:
            return None
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        now = time.time()
        when = now_rfc3339(now)
        ref: dict[str, Any] = {"kind": involved.get("kind", "Pod"),
                               "apiVersion": involved.get("apiVersion", "v1"),
                               "name": meta["name"], "uid": meta.get("uid", ""),
                               "resourceVersion": meta.get("resourceVersion", "")}
        if meta.get("namespace"):
            ref["namespace"] = meta["namespace"]
        if field_path:
            ref["fieldPath"] = field_path
        source: dict[str, Any] = {"component": component}
        if host:
            source["host"] = host
        obj = {
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}",
                         "namespace": namespace, "uid": new_uid(), "creationTimestamp": when},
            "involvedObject": ref, "reason": reason, "message": message, "source": source,
            "firstTimestamp": when, "lastTimestamp": when, "count": 1, "type": type_,
            "eventTime": None, "reportingComponent": component,
            "reportingInstance": host or "",
        }
        return self.create(obj)
