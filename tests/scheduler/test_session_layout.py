"""A session's nodes in natural name order and each pool's ready ones, worked out once for the
snapshot's node tuple and kept with the ledger (`session._layout`): a kept ledger handed the
same tuple cycle after cycle reuses them; a snapshot whose nodes changed is worked out anew."""

from fairway_scheduler.core import ClusterSnapshot, Node, NodePool
from fairway_scheduler.core.framework import Session
from fairway_scheduler.core.ledger import Ledger

POOLS = (NodePool("a"), NodePool("b"))


def nodes_by_pool(session: Session) -> dict[str, list[tuple[int, str]]]:
    return {name: [(n.idx, n.name) for n in pool.nodes] for name, pool in session.pools.items()}


def test_the_same_node_tuple_on_a_kept_ledger_is_ordered_once():
    nodes = (Node("n10", "a", True, 8), Node("n2", "a", True, 8), Node("n1", "b", True, 8))
    snapshot = ClusterSnapshot(nodes=nodes, pools=POOLS)
    ledger = Ledger.of(snapshot)
    first = Session(snapshot, ledger)
    kept = ledger.layout
    second = Session(ClusterSnapshot(nodes=nodes, pools=POOLS), ledger)
    assert ledger.layout is kept  # (not worked out again)
    assert nodes_by_pool(first) == nodes_by_pool(second) == {
        "a": [(1, "n2"), (2, "n10")], "b": [(0, "n1")]}
    assert [n.name for n in second.nodes.values()] == ["n1", "n2", "n10"]


def test_changed_nodes_are_ordered_anew_ready_ones_in_their_pools():
    before = (Node("n1", "a", True, 8), Node("n2", "a", True, 8))
    ledger = Ledger.of(ClusterSnapshot(nodes=before, pools=POOLS))
    Session(ClusterSnapshot(nodes=before, pools=POOLS), ledger)
    # n2 no longer ready, n3 joins pool b, n0 joins pool c (no pool settings: binpack)
    after = (Node("n1", "a", True, 8), Node("n2", "a", False, 8), Node("n3", "b", True, 8),
             Node("n0", "c", True, 4))
    session = Session(ClusterSnapshot(nodes=after, pools=POOLS), ledger)
    assert nodes_by_pool(session) == {"a": [(1, "n1")], "b": [(3, "n3")], "c": [(0, "n0")]}
    assert session.all_nodes_in == {"a": 2, "b": 1, "c": 1}  # ready or not
    assert session.pools["c"].gpu_strategy == "binpack"


def test_a_pool_whose_nodes_are_all_down_is_there_and_empty():
    nodes = (Node("n1", "a", True, 8), Node("n2", "b", False, 8))
    session = Session(ClusterSnapshot(nodes=nodes, pools=POOLS))
    assert nodes_by_pool(session) == {"a": [(0, "n1")], "b": []}
    assert session.all_nodes_in["b"] == 1 and session.all_nodes_in["nowhere"] == 0


def test_two_nodes_with_one_name_give_the_state_kept_under_it():
    nodes = (Node("n1", "a", True, 8), Node("n1", "a", True, 4))
    session = Session(ClusterSnapshot(nodes=nodes, pools=POOLS))
    kept = session.nodes["n1"]
    assert [n is kept for n in session.pools["a"].nodes] == [True, True]


def test_capacity_counts_ready_nodes_per_pool_and_hands_out_lists_of_its_own():
    nodes = (Node("n1", "a", True, 8, cpu_millis=1000, memory_mib=10),
             Node("n2", "a", False, 8, cpu_millis=1000, memory_mib=10),
             Node("n3", "c", True, 2, cpu_millis=500, memory_mib=5))
    snapshot = ClusterSnapshot(nodes=nodes, pools=POOLS)
    ledger = Ledger.of(snapshot)
    session = Session(snapshot, ledger)
    assert session.capacity() == {"a": [8000, 1000, 10], "b": [0, 0, 0], "c": [2000, 500, 5]}
    session.capacity()["a"][0] = 0  # the caller's own
    again = Session(ClusterSnapshot(nodes=nodes, pools=POOLS), ledger)
    assert again.capacity()["a"] == [8000, 1000, 10]
