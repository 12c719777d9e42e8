"""Time-aware fairness (scheduler part 4): the usage history's windows and decay, KAI's
corrected weight, and what it must never change:

- deserved quota: with any usage, every queue still gets min(deserved, wanted) when the
  deserved quotas fit, and shares stay whole GPUs adding up as before;
- switched off (or on in no pool), every scenario decides exactly what it decided before,
  whatever usage history it carries.
"""

import copy
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairway_scheduler.core.model import QueueSpec, Quota, TimeAwareFairness
from fairway_scheduler.core.queues import GPU, MILLI, Queues
from fairway_scheduler.core.usage import UsageHistory, adjusted_weights
from fairway_scheduler.simulation import ScenarioError, parse_scenario, simulate

HOUR = 3600
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday noon
KEY = ("project", "a", "default")
SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


def at(hours: float) -> float:
    return (T + timedelta(hours=hours)).timestamp()


def sliding(hours: float, half_life: float = 0, k: float = 1) -> TimeAwareFairness:
    return TimeAwareFairness(True, "sliding", hours * HOUR, half_life * HOUR, k)


# the history ------------------------------------------------------------------------------
def test_held_gpus_split_over_the_buckets_they_cross():
    history = UsageHistory(HOUR)
    history.hold(KEY, (2, 1000, 0), at(-1.5), at(0))  # 10:30 to 12:00
    assert history.buckets[KEY] == {math.floor(at(-2) / HOUR): [1800 * 2, 1800 * 1000, 0],
                                    math.floor(at(-1) / HOUR): [3600 * 2, 3600 * 1000, 0]}
    assert history.usage(KEY, T, sliding(24)) == (3 * HOUR, 1500 * HOUR * 1000 / 1000, 0)


def test_a_sliding_window_forgets_what_is_older_than_it():
    history = UsageHistory(HOUR)
    history.hold(KEY, (4, 0, 0), at(-10), at(-6))  # 4 GPUs for 4 hours, ending 6 hours ago
    assert history.usage(KEY, T, sliding(24))[GPU] == 16 * HOUR
    assert history.usage(KEY, T, sliding(8))[GPU] == 8 * HOUR  # half of it inside
    assert history.usage(KEY, T, sliding(6))[GPU] == 0


def test_a_tumbling_window_starts_from_nothing():
    history = UsageHistory(HOUR)
    daily = TimeAwareFairness(True, "tumbling", 24 * HOUR)
    history.hold(KEY, (1, 0, 0), at(-14), at(-11))  # 22:00 to 01:00 across midnight
    assert history.usage(KEY, T, daily)[GPU] == 1 * HOUR  # only the hour after midnight
    assert history.usage(KEY, T + timedelta(hours=12), daily)[GPU] == 0  # a new day


def test_half_life_halves_what_is_that_old():
    history = UsageHistory(HOUR)
    history.hold(KEY, (1, 0, 0), at(-24.5), at(-23.5))  # centred on 24 hours ago
    recent = UsageHistory(HOUR)
    recent.hold(KEY, (1, 0, 0), at(-1), at(0))
    old = history.usage(KEY, T, sliding(48, half_life=24))[GPU]
    assert old == pytest.approx(HOUR / 2, rel=0.01)
    assert recent.usage(KEY, T, sliding(48, half_life=24))[GPU] == pytest.approx(
        HOUR * 0.5 ** (0.5 / 24))


def test_drain_hands_out_what_was_added_once_and_loaded_rows_are_not_written_again():
    history = UsageHistory(HOUR)
    history.add(KEY, 10, (5, 0, 0), record=False)  # loaded from the database
    history.hold(KEY, (1, 0, 0), 11 * HOUR, 11 * HOUR + 60)
    assert history.drain() == [(KEY, 11, [60, 0, 0])]
    assert history.drain() == []
    assert history.buckets[KEY] == {10: [5, 0, 0], 11: [60, 0, 0]}
    history.forget_before(datetime.fromtimestamp(11 * HOUR, UTC))
    assert history.buckets[KEY] == {11: [60, 0, 0]}


def test_accrue_counts_each_queue_status_over_the_time_between_cycles():
    from fairway_scheduler.core.model import QueueStatus, ResourceStatus

    def resource(allocated: float) -> ResourceStatus:
        return ResourceStatus(0, -1, 1, 0, allocated, 0, 0)

    history = UsageHistory(HOUR)
    history.accrue([QueueStatus("a", "project", "default", None, resource(2), resource(500),
                                resource(0)),
                    QueueStatus("idle", "project", "default", None, resource(0),
                                resource(0), resource(0))],
                   T, T + timedelta(seconds=30))
    assert list(history.keys()) == [KEY]
    assert history.usage(KEY, T + timedelta(seconds=30), sliding(1)) == (60, 15000, 0)


# the corrected weight ---------------------------------------------------------------------
@pytest.mark.parametrize(("weights", "usage", "k", "expected"), [
    ([1, 1], [1, 0], 1, [0.0, 1.0]),          # all the usage: nothing over quota
    ([1, 1], [3, 1], 1, [0.25, 0.75]),        # W 0.5, U 0.75 and 0.25
    ([1, 1], [3, 1], 0, [0.5, 0.5]),          # k 0: the weights as they are
    ([3, 1], [3, 1], 2, [0.75, 0.25]),        # used exactly its share: no correction
    ([1, 0, 1], [0, 5, 2], 1, [1.0, 0.0, 0.0]),  # weight 0 stays 0; its usage is not counted
])
def test_kai_formula(weights, usage, k, expected):
    assert adjusted_weights(weights, usage, k) == pytest.approx(expected)


def test_no_usage_no_correction():
    assert adjusted_weights([1, 2], [0, 0], 1) is None


# deserved quota is never affected ---------------------------------------------------------
@st.composite
def used_organisations(draw):
    specs, requested, usage = [], {}, {}
    for i in range(draw(st.integers(2, 6))):
        name = f"p{i}"
        specs.append(QueueSpec(name, "project", "default", None,
                               Quota(draw(st.integers(0, 4)), draw(st.sampled_from([-1, -1, 6])),
                                     draw(st.integers(0, 3)))))
        requested[name] = draw(st.integers(0, 12))
        usage[name] = draw(st.floats(0, 1e6))
    return specs, requested, usage, draw(st.integers(0, 24)), draw(st.floats(0, 4))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(used_organisations())
def test_usage_never_takes_deserved_quota_and_shares_still_fill_the_pool(org):
    specs, requested, usage, gpus, k = org
    shares = {}
    for on in (False, True):
        queues = Queues(specs)
        queues.materialise()
        for name, amount in requested.items():
            queue = queues.project(name, "default")
            queue.requested[GPU] = amount * MILLI
            queue.usage = [usage[name], 0.0, 0.0]
        queues.compute_fair_shares({"default": [gpus * MILLI, 0, 0]},
                                   {"default": sliding(24, k=k)} if on else None)
        shares[on] = {q.name: q.fair[GPU] for q in queues.queues.values()}
        everyone = list(queues.queues.values())
        deserved = sum(min(q.deserved[GPU], q.wanted(GPU)) for q in everyone)
        for q in everyone:
            assert q.fair[GPU] % MILLI == 0
            assert q.fair[GPU] <= q.wanted(GPU)
            if deserved <= gpus * MILLI:
                assert q.fair[GPU] >= min(q.deserved[GPU], q.wanted(GPU)), q.name
        # work-conserving: the pool is handed out as far as it is wanted, usage or not
        assert sum(q.fair[GPU] for q in everyone) == sum(shares[False].values())
        if on:
            for q in everyone:
                assert q.plain_fair[GPU] == shares[False][q.name]


# switched off: today's results, exactly ----------------------------------------------------
@pytest.mark.parametrize("path", [p for p in SCENARIOS if not p.stem.startswith("time-aware")],
                         ids=lambda p: p.stem)
def test_switched_off_every_scenario_decides_what_it_did(path):
    data = yaml.safe_load(path.read_text())
    data.pop("expect", None)
    before = simulate(parse_scenario(copy.deepcopy(data)))
    off = copy.deepcopy(data)
    off.setdefault("simulation", {})["timeAwareFairness"] = {"enabled": False, "kValue": 3}
    projects = (off.get("org") or {}).get("projects") or []
    if projects:
        off["usage"] = [{"project": projects[0]["name"], "gpu": 64, "from": "7d"}]
    assert simulate(parse_scenario(off)) == before


def test_on_in_one_pool_only_the_others_decide_as_before():
    data = yaml.safe_load((Path(__file__).parent / "scenarios" /
                           "time-aware-pool-tumbling-departments.yaml").read_text())
    result = simulate(parse_scenario(data))
    for name in ("research", "ops", "res-a", "ops-a"):
        assert "usage" not in result["queues"][name]["pools"]["default"]["gpu"]
        assert "usage" in result["queues"][name]["pools"]["a100"]["gpu"]


# the scenario keys ------------------------------------------------------------------------
@pytest.mark.parametrize(("patch", "message"), [
    ({"simulation": {"timeAwareFairness": {"windowType": "hopping"}}},
     "simulation.timeAwareFairness.windowType: 'hopping' is not sliding or tumbling"),
    ({"simulation": {"timeAwareFairness": {"kValue": -1}}},
     "simulation.timeAwareFairness.kValue"),
    ({"simulation": {"timeAwareFairness": {"window": "7d"}}},
     "simulation.timeAwareFairness"),
    ({"usage": [{"project": "nobody", "gpu": 1, "from": "1d"}]},
     "usage[0].project: project 'nobody' does not exist"),
    ({"usage": [{"project": "a", "gpu": 1}]}, "usage[0] (a).from: required"),
    ({"usage": [{"project": "a", "gpu": 1, "from": "1d", "until": "2d"}]},
     "usage[0] (a).until"),
    ({"usage": [{"project": "a", "nodePool": "b200", "gpu": 1, "from": "1d"}]},
     "usage[0] (a).nodePool: node pool 'b200' does not exist"),
    ({"usage": [{"gpu": 1, "from": "1d"}]}, "usage[0]: name either a project or a department"),
])
def test_bad_keys_are_refused_naming_the_key(patch, message):
    data = {"org": {"projects": [{"name": "a"}]}, **patch}
    with pytest.raises(ScenarioError, match=None) as error:
        parse_scenario(data)
    assert message in str(error.value)


def test_a_kept_window_reads_as_a_fresh_one_also_after_an_older_bucket_changes():
    import random

    rng = random.Random(7)
    kept = UsageHistory(HOUR)
    for _ in range(200):
        start = at(rng.uniform(-200, 0))
        kept.hold(KEY, (rng.uniform(0, 8), rng.uniform(0, 1000), 0), start,
                  start + rng.uniform(1, 3 * HOUR))

    def fresh() -> UsageHistory:
        copy_ = UsageHistory(HOUR)
        for bucket, amounts in kept.buckets[KEY].items():
            copy_.add(KEY, bucket, amounts)
        return copy_

    for settings_ in (sliding(48, half_life=12), sliding(24),
                      TimeAwareFairness(True, "tumbling", 7 * 24 * HOUR, 6 * HOUR)):
        for minutes in (0, 10, 59):
            now = T + timedelta(minutes=minutes)
            assert kept.usage(KEY, now, settings_) == pytest.approx(
                fresh().usage(KEY, now, settings_), rel=1e-12)
        kept.hold(KEY, (3, 0, 0), at(-30), at(-29))  # an older bucket changes
        assert kept.usage(KEY, T, settings_) == pytest.approx(fresh().usage(KEY, T, settings_),
                                                              rel=1e-12)
