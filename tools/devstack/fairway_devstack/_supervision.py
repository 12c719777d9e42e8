"""When to restart a crashed process: exponential back-off with a cap, and crash loops.

Pure bookkeeping (the caller passes the clock), so the policy is tested without processes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestartPolicy:
    """Back-off doubles from `first_delay` up to `max_delay` for each crash in a row; a process
    that stayed up `stable_after` seconds starts again from `first_delay`. `crash_loop_crashes`
    crashes within `crash_loop_window` seconds make it a crash loop: reported loudly, still
    restarted at the cap."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    crash_loop_crashes: int = 5
    crash_loop_window: float = 300.0


@dataclass
class RestartTracker:
    """The crash history of one supervised process."""

    policy: RestartPolicy
    started_at: float = 0.0
    restart_at: float | None = None
    """When the pending restart is due; None while the process runs."""
    delay: float = 0.0
    restarts: int = 0
    crashes: deque[float] = field(default_factory=deque)

    def crashed(self, now: float) -> float:
        """Record a crash seen at `now`; returns the delay before the restart."""
        if self.delay and now - self.started_at >= self.policy.stable_after:
            self.delay = 0.0  # it ran long enough: this crash starts a new series
        self.delay = (
            self.policy.first_delay
            if not self.delay
            else min(self.delay * 2, self.policy.max_delay)
        )
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > self.policy.crash_loop_window:
            self.crashes.popleft()
        self.restart_at = now + self.delay
        return self.delay

    @property
    def crash_looping(self) -> bool:
        return len(self.crashes) >= self.policy.crash_loop_crashes

    def due(self, now: float) -> bool:
        return self.restart_at is not None and now >= self.restart_at

    def restarted(self, now: float) -> None:
        self.restart_at = None
        self.started_at = now
        self.restarts += 1

    def restart_failed(self, now: float) -> float:
        """A restart attempt that did not even start counts as another crash."""
        self.started_at = now
        return self.crashed(now)
