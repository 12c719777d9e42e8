"""Inference servers' autoscaling and serving status: the I/O around core/autoscaler.py.

Lifecycle runs it because lifecycle owns the pods: a replica count is only worth what the
pods that carry it out are, and the controller already makes and deletes them, folds their
readiness and keeps the workload's record. Every `autoscale_seconds` the loop

1. reads the serving metrics once for all servers (`serving_metrics_url`, Prometheus text:
   kubesim's `/metrics/serving`, or Prometheus' `/federate` on a real cluster) and keeps each
   server's samples of its own metric (throughput and concurrency summed over its ready
   replicas, latency averaged, a custom metric summed) and of the requests that arrive;
2. asks the pure autoscaler for each running server's replicas; a new count is recorded
   (`replicas` in lifecycle's table, kept over a restart) and handed to the controller,
   whose converge makes the missing replica pods (the scheduler places them as elastic pods
   above the gang of `minReplicas`, and takes them back first) or deletes the surplus;
3. publishes the server's serving status (endpoint, desired and ready replicas, load) on
   `fairway.serving.<project>.<id>` through the outbox when it changed.

A server whose metric cannot be read keeps its count: no metric is no reason to scale.
"""

import asyncio
import logging
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from fairway_contracts import Phase, WorkloadType
from fairway_contracts import subjects as subj
from fairway_contracts.events import ServingChanged
from fairway_lifecycle import repository as repo
from fairway_lifecycle.controller import Controller, Tracked
from fairway_lifecycle.core.autoscaler import (
    LATENCY,
    Sample,
    ScalingState,
    Window,
    decide,
    overdue,
)
from fairway_lifecycle.core.fold import finished
from fairway_lifecycle.core.objects import endpoint_url
from fairway_runtime import Service
from fairway_store import add_to_outbox

log = logging.getLogger("fairway.lifecycle.scaling")

# The series kubesim serves and a Prometheus federation of the recording rules gives.
REQUESTS = "fairway_serving_requests_per_second"
POD_SERIES = {"throughput": "fairway_serving_pod_throughput",
              "concurrency": "fairway_serving_pod_concurrency",
              LATENCY: "fairway_serving_pod_latency_seconds"}


@dataclass
class Reading:
    """One read of one server's metrics: what arrives, and its metrics over its replicas."""

    requests: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, metric: str, value: float) -> None:
        self.sums[metric] = self.sums.get(metric, 0.0) + value
        self.counts[metric] = self.counts.get(metric, 0) + 1

    def value(self, metric: str) -> float:
        """The metric over the replicas: a mean for latency, a total otherwise (0 with no
        replica reporting it)."""
        total = self.sums.get(metric, 0.0)
        if metric == LATENCY:
            return total / self.counts[metric] if self.counts.get(metric) else 0.0
        return total


def parse_readings(text: str) -> dict[str, Reading]:
    """Prometheus text → a reading per workload id (series without one are ignored)."""
    by_name = {series: metric for metric, series in POD_SERIES.items()}
    readings: dict[str, Reading] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            wid = sample.labels.get("workload_id")
            if not wid:
                continue
            reading = readings.setdefault(wid, Reading())
            if sample.name == REQUESTS:
                reading.requests += sample.value
            else:
                reading.add(by_name.get(sample.name, sample.name), sample.value)
    return readings


@dataclass
class ServerState:
    samples: deque[Sample] = field(default_factory=deque)
    scaling: ScalingState = field(default_factory=ScalingState)
    published: tuple | None = None
    last: Reading | None = None


class Autoscaler:
    """The scaling loop over every inference server the controller drives."""

    def __init__(self, runtime: Service, controller: Controller, *, metrics_url: str | None,
                 period_seconds: float, window: Window) -> None:
        self.runtime = runtime
        self.controller = controller
        self.metrics_url = metrics_url
        self.period_seconds = period_seconds
        self.window = window
        self.servers: dict[str, ServerState] = {}

    async def run(self) -> None:
        await self.controller.loaded.wait()
        while True:
            try:
                await self.tick(time.monotonic())
            except Exception:  # the next tick tries again; counts are recorded
                log.exception("autoscaling round failed")
            await asyncio.sleep(self.period_seconds)

    async def tick(self, now: float) -> None:
        servers = {wid: t for wid, t in list(self.controller.tracked.items())
                   if t.row.workload_type == WorkloadType.INFERENCE}
        for wid in [w for w in self.servers if w not in servers]:
            del self.servers[wid]
        if not servers:
            return
        readings = await self._read()
        for wid, t in servers.items():
            state = self.servers.setdefault(wid, ServerState())
            if readings is not None:
                self._sample(state, readings.get(wid, Reading()), t, now)
            await self._decide(wid, t, state, now)

    async def _read(self) -> dict[str, Reading] | None:
        if not self.metrics_url:
            return None
        url = self.metrics_url

        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read().decode()

        try:
            return parse_readings(await asyncio.to_thread(fetch))
        except Exception as exc:
            log.warning("serving metrics unreadable at %s: %s", url, exc)
            return None

    def _sample(self, state: ServerState, reading: Reading, t: Tracked, now: float) -> None:
        autoscaling = t.row.spec.autoscaling
        metric = (autoscaling.metric if autoscaling is not None else None) or "throughput"
        state.last = reading
        state.samples.append(Sample(now, reading.value(metric), reading.requests))
        while state.samples and now - state.samples[0].at > max(
                self.window.metric_seconds, self.window.scale_down_seconds):
            state.samples.popleft()

    async def _decide(self, wid: str, t: Tracked, state: ServerState, now: float) -> None:
        row = t.row
        autoscaling = row.spec.autoscaling
        replicas = row.spec.pods
        reason = ""
        live = row.desired == "Running" and not finished(row.phase, row.desired)
        if autoscaling is not None and live and row.phase != Phase.CREATING:
            decision = decide(autoscaling, replicas=replicas, samples=list(state.samples),
                              now=now, state=state.scaling, window=self.window)
            state.scaling, reason = decision.state, decision.reason
            if decision.desired != replicas:
                async with self.runtime.pool.acquire() as conn:
                    await repo.set_replicas(conn, wid, decision.desired)
                log.info("%s", decision.reason, extra={"workload_id": wid})
                self.controller.scale(wid, decision.desired)
                replicas = decision.desired
            late = self._overdue(wid, autoscaling, now)
            if late:
                reason = f"{reason}; not ready after the initialization timeout: " \
                         f"{', '.join(late)}"
        await self._publish(wid, t, state, replicas, reason)

    def _overdue(self, wid: str, autoscaling, now: float) -> tuple[str, ...]:
        created, ready = {}, set()
        wall = datetime.now(UTC)
        for pod in self.controller.pods_of(wid):
            name = pod["metadata"]["name"]
            stamp = pod["metadata"].get("creationTimestamp")
            if stamp:
                at = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
                created[name] = now - (wall - at).total_seconds()
            if _ready(pod):
                ready.add(name)
        return overdue(created, ready, now, autoscaling)

    async def _publish(self, wid: str, t: Tracked, state: ServerState, desired: int,
                       reason: str) -> None:
        row = t.row
        autoscaling = row.spec.autoscaling
        ready = sum(1 for p in self.controller.pods_of(wid) if _ready(p))
        reading = state.last
        metric = autoscaling.metric if autoscaling is not None else None
        value = reading.value(metric) if reading is not None and metric else None
        rps = reading.requests if reading is not None else None
        port = row.spec.serving_port
        endpoint = endpoint_url(row.workload_type, row.spec, row.name, wid, row.namespace)
        key = (endpoint, desired, ready, None if rps is None else round(rps, 1),
               None if value is None else round(value, 2))
        if key == state.published:
            return
        event = ServingChanged(
            event_id=f"serving:{wid}:{time.time_ns()}", workload_id=wid, name=row.name,
            project=row.project, sequence=time.time_ns() // 1_000_000, endpoint=endpoint,
            protocol=port.protocol if port is not None else None,
            desired_replicas=desired, ready_replicas=ready,
            min_replicas=autoscaling.min_replicas if autoscaling else row.spec.min_pods,
            max_replicas=autoscaling.ceiling if autoscaling else row.spec.pods,
            metric=metric, metric_threshold=autoscaling.metric_threshold if autoscaling
            else None, metric_value=value, requests_per_second=rps, reason=reason,
            time=datetime.now(UTC))
        async with self.runtime.pool.acquire() as conn:
            await add_to_outbox(conn, subj.serving(row.project, wid), event,
                                msg_id=event.event_id)
        state.published = key


def _ready(pod: dict) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())
