"""The autoscaler of inference servers, as tables: the metric a server's replicas report
over time (and whether requests arrive) against the replicas it should have at each moment.
Each step's replicas are the previous step's decision, as if the scaling loop carried every
decision out at once."""

import itertools

import pytest

from fairway_contracts.workloads import Autoscaling
from fairway_lifecycle.core.autoscaler import (
    Sample,
    ScalingState,
    Window,
    decide,
    overdue,
)

WINDOW = Window(metric_seconds=3, scale_down_seconds=10)


def run(autoscaling: Autoscaling, steps: list[tuple[float, float, float]],
        start: int) -> list[int]:
    """steps: (time, metric value, requests per second) → the desired replicas after each."""
    replicas, state, samples, out = start, ScalingState(), [], []
    for at, value, requests in steps:
        samples.append(Sample(at, value, requests))
        decision = decide(autoscaling, replicas=replicas, samples=samples, now=at, state=state,
                          window=WINDOW)
        replicas, state = decision.desired, decision.state
        out.append(replicas)
    return out


def throughput(min_replicas=1, max_replicas=5, threshold=10.0, retention=None):
    return Autoscaling(min_replicas=min_replicas, max_replicas=max_replicas,
                       metric="throughput", metric_threshold=threshold,
                       scale_to_zero_retention_seconds=retention)


def steady(values: list[float], every: float = 1.0, start: float = 0.0):
    """One sample a second: (t, value, requests = value)."""
    return [(start + i * every, v, v) for i, v in enumerate(values)]


TABLES = [
    # what it pins,            autoscaling,  start, steps,                              expected
    ("load within one replica's threshold keeps one",
     throughput(), 1, steady([5, 8, 10, 9]), [1, 1, 1, 1]),
    ("up at once to ceil(total / threshold), averaged over the 3 s window",
     throughput(), 1, steady([10, 30, 30, 30]), [1, 2, 3, 3]),
    ("never above maxReplicas",
     throughput(max_replicas=3), 1, steady([100, 100]), [3, 3]),
    ("never below minReplicas",
     throughput(min_replicas=2), 2, steady([0, 0, 0]), [2, 2, 2]),
    ("down only after the lower count held for the 10 s window",
     throughput(), 1, steady([40] * 3 + [5] * 13),
     [4, 4, 4] + [4] * 10 + [3, 2, 1]),
]


@pytest.mark.parametrize(("autoscaling", "start", "steps", "expected"),
                         [t[1:] for t in TABLES], ids=[t[0] for t in TABLES])
def test_desired_replicas_from_the_metric(autoscaling, start, steps, expected):
    assert run(autoscaling, steps, start) == expected


def test_flapping_load_does_not_flap_replicas():
    # load that swings between 40 and 5 every 2 s: the 3 s window averages it to at most
    # 28 requests/s (3 replicas), the 10 s window keeps the highest recommendation
    swings = [40 if (i // 2) % 2 == 0 else 5 for i in range(40)]

    desired = run(throughput(), steady(swings), start=1)

    changes = sum(1 for a, b in itertools.pairwise(desired) if a != b)
    assert desired[:2] == [4, 4]
    assert changes == 1 and set(desired[12:]) == {3}


def test_load_that_stops_scales_down_step_by_step_after_the_window_not_to_zero():
    desired = run(throughput(min_replicas=1), steady([50] * 3 + [0] * 20), start=1)

    assert desired[2] == 5 and desired[-1] == 1 and min(desired) == 1


SLEEPY = throughput(min_replicas=0, max_replicas=4, retention=5)


def test_scale_to_zero_only_after_the_retention_time_without_a_request():
    steps = steady([20, 20, 0, 0, 0, 0, 0, 0, 0])  # the last request at t=1

    desired = run(SLEEPY, steps, start=1)

    #             t=0 1  2  3  4  5  6: 5 s since t=1 → zero
    assert desired == [2, 2, 2, 2, 2, 2, 0, 0, 0]


def test_a_request_at_zero_wakes_the_server_with_one_replica_or_what_the_metric_asks():
    quiet = steady([20, 0, 0, 0, 0, 0, 0, 0])
    assert run(SLEEPY, quiet, start=1)[-1] == 0

    woken = run(SLEEPY, [*quiet, (8, 3, 3)], start=1)
    busy = run(SLEEPY, [*quiet, (8, 35, 35)], start=1)

    assert woken[-1] == 1 and busy[-1] == 4


def test_a_server_without_requests_from_its_start_sleeps_after_the_retention():
    desired = run(SLEEPY, steady([0] * 8), start=1)

    assert desired == [1, 1, 1, 1, 1, 0, 0, 0]


def test_a_new_server_without_samples_keeps_its_count():
    decision = decide(throughput(), replicas=3, samples=[], now=0, state=ScalingState())

    assert decision.desired == 3 and "no metric" in decision.reason


def test_latency_scales_the_count_by_its_ratio_to_the_threshold_and_never_to_zero():
    latency = Autoscaling(min_replicas=1, max_replicas=8, metric="latency",
                          metric_threshold=0.2)
    # 0.4 s at 2 replicas → 4; 0.21 s is within the 10 % tolerance → kept
    assert decide(latency, replicas=2, samples=[Sample(0, 0.4, 10)], now=0,
                  state=ScalingState()).desired == 4
    assert decide(latency, replicas=2, samples=[Sample(0, 0.21, 10)], now=0,
                  state=ScalingState()).desired == 2
    assert run(latency, [(t, 0.0, 0) for t in range(20)], start=2)[-1] == 1


def test_concurrency_and_a_custom_metric_are_totals_over_the_replicas():
    concurrency = Autoscaling(min_replicas=1, max_replicas=10, metric="concurrency",
                              metric_threshold=4)
    custom = concurrency.model_copy(update={"metric": "vllm:num_requests_waiting"})

    assert run(concurrency, steady([9]), start=1) == [3]
    assert run(custom, steady([9]), start=1) == [3]


def test_without_a_metric_the_count_is_min_replicas():
    fixed = Autoscaling(min_replicas=3)

    assert run(fixed, steady([100, 0]), start=3) == [3, 3]


def test_replicas_not_ready_past_the_initialization_timeout_are_reported():
    autoscaling = throughput().model_copy(update={"initialization_timeout_seconds": 30})
    created = {"srv-1": 0.0, "srv-2": 50.0, "srv-3": 10.0}

    assert overdue(created, ready={"srv-1"}, now=45, autoscaling=autoscaling) == ("srv-3",)
    assert overdue(created, ready=set(), now=45, autoscaling=throughput()) == ()
