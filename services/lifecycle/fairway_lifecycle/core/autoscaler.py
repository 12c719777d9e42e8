"""The autoscaler of inference servers: how many replicas a server should have now.

Pure, no I/O: the scaling loop (scaling.py) reads the metric of each server's replicas, passes
the samples and the last state in, and changes the replica count to what comes out. Run:ai's
autoscaling, decided the way the Kubernetes HPA and Knative decide it:

- **From the metric.** `metric` is measured over the server's ready replicas and averaged over
  a short window (`Window.metric_seconds`) so one spike does not move it. For throughput
  (requests per second), concurrency (requests in flight) and a custom metric the samples are
  totals over the replicas, and the server needs `ceil(total / metricThreshold)` replicas to
  keep each at or below the threshold. Latency is not additive (one request takes as long on
  two replicas): it scales the current count by how far it is above or below the threshold,
  `ceil(replicas * latency / metricThreshold)`, as the HPA does with an average. The result
  is held within `[minReplicas, maxReplicas]`, and at least one while the server may not
  sleep.
- **Against flapping.** Scaling up follows the recommendation at once (a server that is short
  of replicas drops requests); scaling down takes the highest recommendation of the last
  `Window.scale_down_seconds`, so it goes down only once the lower count has held that long
  (the HPA's downscale stabilisation window).
- **Scale to zero.** Only with `minReplicas` 0 and throughput or concurrency (latency has no
  value without requests, so it could never say "idle", nor wake the server), and only after
  `scaleToZeroRetentionSeconds` without a request. A request arriving while at zero wakes it:
  one replica at once (more as the metric asks).
- **Slow replicas.** A replica that has not become ready `initializationTimeoutSeconds` after
  it was made is reported (`overdue`): the server keeps it, and says which ones are late.
  Until it is ready it carries no load, so the metric keeps asking for it.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from fairway_contracts.workloads import SCALE_TO_ZERO_METRICS, Autoscaling

LATENCY = "latency"


@dataclass(frozen=True)
class Sample:
    """The metric at one moment: `value` summed over the ready replicas (the mean for
    latency), `requests` the requests per second that arrived (0: no traffic)."""

    at: float
    value: float
    requests: float


@dataclass(frozen=True)
class Window:
    """How far back the autoscaler looks (seconds)."""

    metric_seconds: float = 10.0
    scale_down_seconds: float = 30.0


@dataclass(frozen=True)
class ScalingState:
    """What the autoscaler remembers of one server between decisions."""

    # (time, replicas recommended then), newest last, as long as the scale-down window.
    recommendations: tuple[tuple[float, int], ...] = ()
    # When a request last arrived (the server's start counts as one: a new server is not idle).
    last_request_at: float | None = None
    # When it went to zero (None: it has replicas, or went to zero before this memory began).
    asleep_since: float | None = None


@dataclass(frozen=True)
class Decision:
    desired: int
    state: ScalingState
    reason: str


def decide(autoscaling: Autoscaling, *, replicas: int, samples: Sequence[Sample], now: float,
           state: ScalingState, window: Window = Window()) -> Decision:
    """The replicas the server should have at `now`, given the samples of its metric (any
    order, any age: those older than the window are ignored) and what it remembered."""
    last_request = _last_request(samples, state.last_request_at, now)
    state = replace(state, last_request_at=last_request)
    if not autoscaling.scales:
        return Decision(autoscaling.min_replicas, state, "fixed replica count")
    recent = [s for s in samples if now - window.metric_seconds <= s.at <= now]
    if replicas == 0:
        return _from_zero(autoscaling, recent, now, state)
    if not recent:
        return Decision(replicas, state, "no metric yet: the count is kept")
    raw = _recommended(autoscaling, replicas, recent)
    if raw == 0 and _may_sleep(autoscaling, last_request, now):
        # The retention time is the quiet period that guards scaling to zero; the window
        # below would only add to it.
        return Decision(0, replace(state, recommendations=(), asleep_since=now),
                        f"no request for {autoscaling.scale_to_zero_retention_seconds or 0} s: "
                        "scaled to zero")
    recommended = min(max(raw, autoscaling.min_replicas, 1), autoscaling.ceiling)
    kept = tuple((t, r) for t, r in state.recommendations if now - t < window.scale_down_seconds)
    history = (*kept, (now, recommended))
    state = replace(state, recommendations=history, asleep_since=None)
    # Up at once; down only as far as the highest recommendation of the window allows.
    desired = recommended if recommended >= replicas else max(r for _, r in history)
    return Decision(desired, state, _why(autoscaling, desired, replicas))


def _last_request(samples: Sequence[Sample], remembered: float | None, now: float) -> float:
    times = [s.at for s in samples if s.requests > 0 and s.at <= now]
    latest = max(times, default=None)
    if remembered is None:
        return now if latest is None else latest
    return remembered if latest is None else max(latest, remembered)


def _from_zero(autoscaling: Autoscaling, recent: Sequence[Sample], now: float,
               state: ScalingState) -> Decision:
    """At zero a request wakes the server: one replica, or what the metric already asks.
    Only a request that came after it went to sleep counts (a server that lost its memory
    of when counts any recent one)."""
    since = state.asleep_since
    woken_by = [s for s in recent if s.requests > 0 and (since is None or s.at > since)]
    if not woken_by:
        return Decision(0, state, "scaled to zero: no request")
    woken = min(max(_recommended(autoscaling, 1, woken_by), 1), autoscaling.ceiling)
    return Decision(woken, replace(state, recommendations=((now, woken),), asleep_since=None),
                    "a request arrived: woken from zero")


def _may_sleep(autoscaling: Autoscaling, last_request: float, now: float) -> bool:
    """True when the server may have no replica at all now."""
    if autoscaling.min_replicas != 0 or autoscaling.metric not in SCALE_TO_ZERO_METRICS:
        return False
    return now - last_request >= (autoscaling.scale_to_zero_retention_seconds or 0)


def _recommended(autoscaling: Autoscaling, replicas: int, recent: Sequence[Sample]) -> int:
    threshold = autoscaling.metric_threshold or 1.0
    mean = sum(s.value for s in recent) / len(recent)
    if autoscaling.metric == LATENCY:
        # A small tolerance, as the HPA's: a latency a hair over the threshold from rounding
        # does not add a replica.
        ratio = mean / threshold
        return replicas if abs(ratio - 1) <= 0.1 else math.ceil(replicas * ratio)
    return math.ceil(round(mean / threshold, 9))


def _why(autoscaling: Autoscaling, desired: int, replicas: int) -> str:
    if desired == replicas:
        return f"{desired} replicas carry the {autoscaling.metric}"
    verb = "up" if desired > replicas else "down"
    return (f"scaled {verb} from {replicas} to {desired} replicas for {autoscaling.metric} "
            f"at a threshold of {autoscaling.metric_threshold:g} per replica")


def overdue(created: Mapping[str, float], ready: set[str], now: float,
            autoscaling: Autoscaling) -> tuple[str, ...]:
    """Replicas not ready `initializationTimeoutSeconds` after they were made, by name."""
    timeout = autoscaling.initialization_timeout_seconds
    if timeout is None:
        return ()
    return tuple(sorted(name for name, at in created.items()
                        if name not in ready and now - at > timeout))
