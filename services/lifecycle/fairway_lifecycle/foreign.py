"""Foreign usage on the nodes: pods that another scheduler bound, summed per node and reported
with the node's inventory (`NodeInventory.foreign`), so the scheduler never books their GPUs.

One watch of the pods that are not Fairway's (a label selector leaves its workloads' and its
reservation pods out at the source; its `listeners` get every event too: third-party
discovery); `core.foreign` decides what counts. A change of a node's
sum publishes that node's last inventory again with the new sum, a short pause after the
first change so a burst (a Job's pods bound at once) is one message per node. The controller
passes every inventory it publishes through `inventory`, so both carry the same sum.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from fairway_bus import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import NodeInventory
from fairway_contracts.workloads import utcnow
from fairway_kube import ListWatcher
from fairway_lifecycle.core.foreign import CANDIDATES, ForeignPods
from fairway_lifecycle.kube import Kube

log = logging.getLogger("fairway.lifecycle.foreign")

PUBLISH_PAUSE = 0.2  # seconds a burst of changes gathers before the nodes are published


class ForeignUsageTracker:
    def __init__(self, kube: Kube, *, resync_seconds: float,
                 namespace_filter: Callable[[str], bool] | None = None):
        self.kube = kube
        self.resync_seconds = resync_seconds
        # which namespaces' pods this replica counts (all: None); a sharded lifecycle narrows it
        self.namespace_filter = namespace_filter
        self.pods = ForeignPods()
        self.last: dict[str, NodeInventory] = {}  # the last inventory published, per node
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._watcher: ListWatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seq = 0
        self._instance = uuid.uuid4().hex[:12]  # message ids unique across restarts
        # Others that want the pods of this watch (third-party discovery): one watch for all.
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []

    def start(self, runtime: Any, *, watch: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        if watch:
            self._watcher = ListWatcher(
                self.kube.core.list_pod_for_all_namespaces, self._on_thread,
                name="foreign-pods", label_selector=CANDIDATES,
                resync_seconds=self.resync_seconds)
            self._watcher.start()
        runtime.background(self._publish_loop(runtime), "foreign-usage")

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def inventory(self, inventory: NodeInventory) -> NodeInventory:
        """The node's inventory with its foreign sum (the controller's hook), remembered so a
        later change of the sum can publish it again."""
        counted = inventory.model_copy(update={"foreign": self.pods.usage(inventory.name)})
        if inventory.deleted:
            self.last.pop(inventory.name, None)
        else:
            self.last[inventory.name] = counted
        return counted

    def _on_thread(self, kind: str, pod: dict[str, Any]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.on_pod, kind, pod)

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(kind, pod)
        namespace = (pod.get("metadata") or {}).get("namespace", "")
        if self.namespace_filter is not None and not self.namespace_filter(namespace):
            return
        changed = self.pods.put(kind, pod)
        if changed:
            self._dirty |= changed
            self._wake.set()

    async def _publish_loop(self, runtime: Any) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(PUBLISH_PAUSE)
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for name in sorted(dirty):
                last = self.last.get(name)
                if last is None:
                    continue  # a node not reported yet: its first inventory carries the sum
                inventory = last.model_copy(update={"foreign": self.pods.usage(name),
                                                    "observed_at": utcnow()})
                self.last[name] = inventory
                self._seq += 1
                try:
                    await publish_model(runtime.js, subjects.node_inventory(name), inventory,
                                        msg_id=f"node:{name}:foreign:{self._instance}:{self._seq}")
                except Exception:  # NATS away a moment: published again at the next change
                    log.warning("publishing node %s's foreign usage failed", name,
                                exc_info=True)
                    self._dirty |= {name} | {n for n in dirty if n > name}
                    self._wake.set()
                    await asyncio.sleep(1)  # not a hot loop while NATS is away
                    break
