"""A stand-in for kube-scheduler: binds pods whose `spec.schedulerName` is `default-scheduler`.

On a real cluster, pods that name no scheduler (the API server defaults `schedulerName` to
`default-scheduler`) are placed by kube-scheduler, and a GPU they hold is a GPU Fairway must not
book again. kubesim plays that scheduler when started with `default_scheduler=True` (command
line `--default-scheduler`); it is off by default, because kubesim's own tests and Fairway's
use unbound pods as "waiting for a scheduler". Pods that name any other scheduler (`fairway`, or
one that does not exist) are left alone, as kube-scheduler leaves them.

It binds a pending, unbound pod to the first Ready node (by name) whose allocatable `cpu`,
`memory`, `pods` and extended resources (`nvidia.com/gpu`) cover the pod's requests on top of
those of the node's pods that have not ended, whose labels match the pod's `nodeSelector`, and
whose `NoSchedule` / `NoExecute` taints the pod tolerates. A pod that fits nowhere gets
`PodScheduled: False` (`Unschedulable`, "0/N nodes are available: …") and is tried again when a
pod is deleted or ends, or a node changes. No affinity, topology spread or preemption.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ApiError
from .objects import node_is_ready, now_rfc3339, pod_requests
from .quantity import parse_quantity
from .store import DELETED, Event, Resource, Store

DEFAULT_SCHEDULER = "default-scheduler"


def _tolerates(pod: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    for tol in (pod.get("spec") or {}).get("tolerations") or ():
        if tol.get("effect") not in (None, "", taint.get("effect")):
            continue
        if tol.get("operator") == "Exists" and tol.get("key") in (None, "", taint.get("key")):
            return True
        if tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


class DefaultScheduler:
    """Binds `default-scheduler` pods to nodes with room (see the module docstring)."""

    def __init__(self, store: Store, bind: Callable[[str, str, str], None]) -> None:
        self.pods = store["pods"]
        self.nodes = store["nodes"]
        self.bind = bind
        self._waiting: dict[tuple[str, str], None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        store.listen(self._on_event)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for stored in self.pods.select():
            if self._wants(stored.obj):
                meta = stored.obj["metadata"]
                self._waiting[(meta["namespace"], meta["name"])] = None
        self._kick()

    def stop(self) -> None:
        self._loop = None

    @staticmethod
    def _wants(pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") == DEFAULT_SCHEDULER and not spec.get("nodeName")
                and not pod["metadata"].get("deletionTimestamp")
                and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))

    def _on_event(self, resource: Resource, event: Event) -> None:
        if resource is self.nodes:
            self._retry_all()
            return
        if resource is not self.pods:
            return
        obj = event.stored.obj
        if event.type == DELETED or (obj.get("status") or {}).get("phase") in (
                "Succeeded", "Failed"):
            self._retry_all()  # room may have been freed
            return
        if self._wants(obj):
            meta = obj["metadata"]
            self._waiting[(meta["namespace"], meta["name"])] = None
            self._kick()

    def _retry_all(self) -> None:
        if self._waiting:
            self._kick()

    def _kick(self) -> None:
        if self._loop is not None and not self._scheduled and self._waiting:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, {}
        used = self._used()
        nodes = [_NodeView(stored.obj) for stored in self.nodes.select()]
        for namespace, name in waiting:
            stored = self.pods.get(namespace, name)
            if stored is None or not self._wants(stored.obj):
                continue
            node, why = self._place(stored.obj, nodes, used)
            if node is None:
                self._waiting[(namespace, name)] = None  # another try when room is freed
                self._unschedulable(namespace, name, why)
                continue
            try:
                self.bind(namespace, name, node)
            except ApiError:
                continue
            for res, value in {**pod_requests(stored.obj), "pods": 1.0}.items():
                used.setdefault(node, {})[res] = used.get(node, {}).get(res, 0.0) + value

    def _used(self) -> dict[str, dict[str, float]]:
        used: dict[str, dict[str, float]] = {}
        for stored in self.pods.select():
            pod = stored.obj
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            held = used.setdefault(node, {})
            for res, value in {**pod_requests(pod), "pods": 1.0}.items():
                held[res] = held.get(res, 0.0) + value
        return used

    @staticmethod
    def _place(pod: Mapping[str, Any], nodes: list[_NodeView],
               used: Mapping[str, Mapping[str, float]]) -> tuple[str | None, str]:
        wanted = {**pod_requests(pod), "pods": 1.0}
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        reasons: dict[str, int] = {}
        for node in nodes:
            if not node.ready:
                why = "node(s) were not ready"
            elif any(node.labels.get(k) != v for k, v in selector.items()):
                why = "node(s) didn't match Pod's node affinity/selector"
            elif any(t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(pod, t)
                     for t in node.taints):
                why = "node(s) had untolerated taint"
            else:
                why = node.short(wanted, used.get(node.name, {}))
                if not why:
                    return node.name, ""
            reasons[why] = reasons.get(why, 0) + 1
        summary = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
        return None, f"0/{len(nodes)} nodes are available: {summary}."

    def _unschedulable(self, namespace: str, name: str, message: str) -> None:
        stored = self.pods.get(namespace, name)
        if stored is None:
            return
        for cond in (stored.obj.get("status") or {}).get("conditions") or ():
            if cond.get("type") == "PodScheduled" and cond.get("message") == message:
                return  # said already

        def mark(pod: dict[str, Any]) -> None:
            status = pod.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or ()
                          if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "False",
                               "reason": "Unschedulable", "message": message,
                               "lastProbeTime": None, "lastTransitionTime": now_rfc3339()})
            status["conditions"] = conditions

        self.pods.mutate(namespace, name, mark)


class _NodeView:
    """What placement reads of a node, parsed once per round."""

    __slots__ = ("allocatable", "labels", "name", "ready", "taints")

    def __init__(self, node: Mapping[str, Any]) -> None:
        self.name = node["metadata"]["name"]
        self.labels = node["metadata"].get("labels") or {}
        self.taints = (node.get("spec") or {}).get("taints") or ()
        self.ready = node_is_ready(node)
        self.allocatable = {res: float(parse_quantity(qty)) for res, qty in (
            (node.get("status") or {}).get("allocatable") or {}).items()}

    def short(self, wanted: Mapping[str, float], held: Mapping[str, float]) -> str:
        """What the node lacks for `wanted` on top of `held` ("" when it fits)."""
        for res, value in wanted.items():
            if value <= 0:
                continue
            capacity = self.allocatable.get(res)
            if capacity is None:
                if "/" not in res:
                    continue  # a native resource the node does not report
                capacity = 0.0  # an extended resource the node lacks
            if held.get(res, 0.0) + value > capacity + 1e-9:
                return "Too many pods" if res == "pods" else f"Insufficient {res}"
        return ""
