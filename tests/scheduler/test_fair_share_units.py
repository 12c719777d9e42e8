"""Water-filling and the rounding rule, and the ledger's handling of pods of unknown devices."""

from datetime import UTC, datetime
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from fairway_scheduler.core import Allocation, ClusterSnapshot, Ledger, Node, Workload, allocate
from fairway_scheduler.core.fairshare import fair_shares, water_fill

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_units_the_floors_leave_go_by_weight_then_name():
    assert water_fill(10, {"a": 10, "b": 10, "c": 10}, {"a": 1, "b": 1, "c": 1}) == {
        "a": 4, "b": 3, "c": 3}
    assert water_fill(10, {"a": 10, "b": 10, "c": 10}, {"a": 1, "b": 1, "c": 2}) == {
        "a": 3, "b": 2, "c": 5}


def test_what_one_does_not_want_goes_to_the_others():
    assert water_fill(12, {"a": 1, "b": 100, "c": 100}, {"a": 2, "b": 3, "c": 1}) == {
        "a": 1, "b": 8, "c": 3}


def test_weight_zero_gets_nothing_over_quota():
    shares = fair_shares(10, {"a": 2, "b": 2}, {"a": 10, "b": 10}, {"a": 0, "b": 1})
    assert shares == {"a": 2, "b": 8}


def test_deserved_above_capacity_is_shared_by_deserved():
    shares = fair_shares(6, {"a": 8, "b": 4}, {"a": 8, "b": 4}, {"a": 1, "b": 1})
    assert shares == {"a": 4, "b": 2}
    assert sum(shares.values()) <= 6


def test_the_runai_worked_example():
    # deserved 2 + 4 + 2 of 20; the 12 left over by weights 2, 3, 1
    shares = fair_shares(20, {"a": 2, "b": 4, "c": 2}, {"a": 99, "b": 99, "c": 99},
                         {"a": 2, "b": 3, "c": 1})
    assert shares == {"a": 6, "b": 10, "c": 4}


def test_an_offer_of_exactly_what_a_queue_wants_satisfies_it():
    assert water_fill(3, {"a": 1, "b": 1, "c": 2}, {"a": 1, "b": 2, "c": 3}) == {
        "a": 0, "b": 1, "c": 2}


def water_fill_in_fractions(total, wants, weights, step=1, age=None):
    """The division as the rule reads, in rational numbers: what `water_fill` computes in
    integers."""
    grants = dict.fromkeys(wants, 0)
    want = {name: amount for name, amount in wants.items() if amount > 0 and weights[name] > 0}
    exact = {name: Fraction(weights[name]) for name in want}
    remainders = {}
    left = total
    while left > 0 and want:
        weight_sum = sum(exact[name] for name in want)
        offered, satisfied = left, False
        for name in sorted(want):
            offer = offered * exact[name] / weight_sum
            if want[name] <= offer:
                given, satisfied = want[name], True
                remainders.pop(name, None)
            else:
                given = int(offer // step) * step
                remainders[name] = offer - given
            grants[name] += given
            want[name] -= given
            left -= given
        want = {name: amount for name, amount in want.items() if amount > 0}
        if not satisfied:
            break
    rank = age or {}
    order = sorted(want, key=lambda n: (-remainders.get(n, 0), rank.get(n, 0), n))
    while left > 0 and order:
        for name in order:
            given = min(step, want[name], left)
            grants[name] += given
            want[name] -= given
            left -= given
            if left <= 0:
                break
        order = [name for name in order if want[name] > 0]
    return grants


weights = st.one_of(st.integers(0, 20), st.floats(0, 20, allow_nan=False),
                    st.sampled_from([0.1, 1 / 3, 2.5, 1e-9, 7.25]))


@given(st.integers(0, 50_000), st.dictionaries(st.sampled_from("abcdefgh"),
                                                st.tuples(st.integers(0, 20_000), weights,
                                                          st.integers(0, 9)), max_size=8),
       st.sampled_from([1, 1000]))
def test_water_filling_in_integers_divides_as_rational_numbers_do(total, queues, step):
    wants = {name: w for name, (w, _, _) in queues.items()}
    weight = {name: x for name, (_, x, _) in queues.items()}
    age = {name: a for name, (_, _, a) in queues.items()}
    assert (water_fill(total, wants, weight, step, age)
            == water_fill_in_fractions(total, wants, weight, step, age))


def test_pods_bound_without_a_decision_take_the_lowest_free_devices():
    nodes = (Node("n1", "default", True, 4),)
    allocations = (Allocation("x", "x-0", "n1", (0,)), Allocation("y", "y-0", "n1",
                                                                   unknown_devices=2))
    w = Workload("w", "team-a", 50, T0, 1, waiting_pods=("w-0",))
    snapshot = ClusterSnapshot(nodes, (w,), allocations)
    [placement] = allocate(snapshot).placements
    assert placement.pods[0].gpu_devices == (3,)
    ledger = Ledger.of(snapshot)
    assert ledger.used["n1"] == [1000, 1000, 1000, 0]
    ledger.release("y", "y-0")
    assert ledger.used["n1"] == [1000, 0, 0, 0]
    ledger.put_node(Node("n1", "default", True, 2))  # the node lost devices
    assert ledger.used["n1"] == [1000, 0]
