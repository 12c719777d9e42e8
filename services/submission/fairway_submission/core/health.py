"""Heartbeats of the other services, for /healthz: the platform is healthy when every
service has said it is ready within the last few heartbeat intervals."""

import time

from fairway_contracts import subjects
from fairway_contracts.events import Heartbeat

SERVICES = ("submission", "policy", "scheduler", "lifecycle", "metrics")


class Heartbeats:
    def __init__(self, interval_seconds: float):
        self.max_age = max(3 * interval_seconds, 5.0)
        self.last: dict[str, tuple[float, bool]] = {}

    def record(self, beat: Heartbeat) -> None:
        self.last[beat.service] = (time.monotonic(), beat.ready)

    def status(self, self_ready: bool) -> dict[str, str]:
        now = time.monotonic()
        out = {}
        for service in SERVICES:
            if service == "submission":
                out[service] = "ready" if self_ready else "starting"
                continue
            seen = self.last.get(service)
            if seen is None:
                out[service] = "unseen"
            elif now - seen[0] > self.max_age:
                out[service] = f"silent for {now - seen[0]:.0f}s"
            else:
                out[service] = "ready" if seen[1] else "not ready"
        return out


HEALTH_SUBJECT = f"{subjects.HEALTH_PREFIX}.*"
