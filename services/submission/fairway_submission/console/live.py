"""Live phase updates for the console: after the workload view commits a batch of phase
changes, the replica that applied it announces them (`fairway.view.phases`, core NATS), and
every replica tells each of its connected browsers which of its visible workloads moved (one
in-process fan-out, no database reads per browser)."""

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from fairway_contracts.events import PhaseApplied, PhaseChanged

log = logging.getLogger("fairway.submission.console")

# A browser that falls this far behind is told to reload instead of being sent the backlog.
BACKLOG = 1_000


@dataclass(frozen=True)
class Visible:
    """Which workloads a browser's caller may see, by project name: every workload of
    `every`, only inferences of `inference_only`; `everything` for a cluster-wide viewer."""

    everything: bool
    every: frozenset[str] = frozenset()
    inference_only: frozenset[str] = frozenset()

    def allows(self, project: str, workload_type: str) -> bool:
        return (self.everything or project in self.every
                or (workload_type == "inference" and project in self.inference_only))


@dataclass(eq=False)
class Watcher:
    visible: Visible
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(BACKLOG))
    behind: bool = False


def newest_per_workload[E: (PhaseChanged, PhaseApplied)](events: Iterable[E]) -> list[E]:
    """Of a batch, each workload's newest transition (a batch may carry several of one)."""
    newest: dict[str, E] = {}
    for event in events:
        known = newest.get(event.workload_id)
        if known is None or event.sequence > known.sequence:
            newest[event.workload_id] = event
    return list(newest.values())


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class PhaseFeed:
    """The browsers connected to this replica, and what each may see."""

    def __init__(self) -> None:
        self.watchers: set[Watcher] = set()

    def watch(self, visible: Visible) -> Watcher:
        watcher = Watcher(visible)
        self.watchers.add(watcher)
        return watcher

    def leave(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def publish(self, events: Iterable[PhaseChanged | PhaseApplied]) -> None:
        """Called with transitions the view has committed (announced by whichever replica
        applied them); never blocks the caller."""
        if not self.watchers:
            return
        changes = newest_per_workload(events)
        for watcher in self.watchers:
            for event in changes:
                if not watcher.visible.allows(event.project, event.workload_type.value):
                    continue
                try:
                    watcher.queue.put_nowait(sse("phase", {
                        "id": event.workload_id, "phase": event.phase.value,
                        "reason": event.reason, "message": event.message,
                        "sequence": event.sequence}))
                except asyncio.QueueFull:
                    # Dropped news would leave a stale table: the browser reloads instead.
                    watcher.behind = True
                    break
