"""The node a CPU-only pod is given, as pods come and go: the pool's nodes kept in the order
its CPU strategy prefers (`PoolNodes._place_cpu_ordered`) give the node a plain scan gives
(the fitting node with the smallest key, CPU-only nodes before GPU ones)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fairway_scheduler.core.model import Node
from fairway_scheduler.core.nodes import FULL, NodeState, PoolNodes


def plain_choice(pool: PoolNodes, cpu: int, mem: int, node_type: str | None
                 ) -> NodeState | None:
    sign = 1 if pool.cpu_strategy == "binpack" else -1
    for group in (pool.cpu_nodes, pool.gpu_nodes):
        fits = [n for n in group if n.fits_host(cpu, mem)
                and (node_type is None or n.node_type == node_type)]
        if fits:
            return min(fits, key=lambda n: (sign * n.free_cpu, sign * n.free_mem, n.idx))
    return None


@st.composite
def pools(draw) -> PoolNodes:
    nodes = [NodeState(i, Node(f"n{i}", "a", True, draw(st.sampled_from([0, 0, 2, 8])),
                               cpu_millis=draw(st.sampled_from([0, 4000, 8000, 16000])),
                               memory_mib=draw(st.sampled_from([0, 8192, 65536])),
                               max_pods=draw(st.sampled_from([3, 110])),
                               node_type=draw(st.sampled_from([None, "a"]))))
             for i in range(draw(st.integers(1, 12)))]
    return PoolNodes("a", nodes, "binpack", draw(st.sampled_from(["binpack", "spread"])))


@settings(max_examples=300, deadline=None)
@given(pools(), st.lists(st.tuples(st.sampled_from(["cpu", "cpu", "gpu", "give"]),
                                   st.sampled_from([500, 1000, 4000]),
                                   st.sampled_from([1024, 4096, 16384]),
                                   st.sampled_from([None, None, "a"]),
                                   st.integers(0, 1000)), max_size=80))
def test_a_cpu_pod_gets_the_node_a_plain_scan_gives(pool, steps):
    takes = []
    for kind, cpu, mem, node_type, pick in steps:
        if kind == "give" and takes:
            pool.give(takes.pop(pick % len(takes)))
        elif kind == "gpu":  # a GPU pod takes host room too (the index must follow it)
            take = pool.place_whole(1, cpu, mem)
            if take is None:
                take = pool.place_fraction(1, FULL // 2, None, cpu, mem)
            if take is not None:
                takes.append(take)
        else:
            expected = plain_choice(pool, cpu, mem, node_type)
            take = pool.place_cpu(cpu, mem, node_type)
            assert (take.node if take is not None else None) is expected
            if take is not None:
                takes.append(take)
