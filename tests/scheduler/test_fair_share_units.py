"""Water-filling and the rounding rule, and the ledger's handling of pods of unknown devices."""

from datetime import UTC, datetime

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
