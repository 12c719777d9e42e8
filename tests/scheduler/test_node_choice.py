"""The node a whole-GPU pod is given, as pods come and go: the pool's indexes (buckets of free
devices, and where a scan for host room may start) give the node a plain scan gives."""

import random

import pytest

from fairway_scheduler.core.model import Node
from fairway_scheduler.core.nodes import FULL, NodeState, PoolNodes


def plain_choice(pool: PoolNodes, k: int, cpu: int, mem: int) -> NodeState | None:
    """binpack: the fewest free devices that are enough; spread: the most; then the first in
    natural order; only nodes with room for the pod's host resources and one more pod."""
    fits = [n for n in pool.gpu_nodes if n.whole >= k and n.fits_host(cpu, mem)]
    if not fits:
        return None
    sign = 1 if pool.gpu_strategy == "binpack" else -1
    return min(fits, key=lambda n: (sign * n.whole, n.idx))


@pytest.mark.parametrize("seed", range(8))
def test_a_full_pool_gives_the_node_a_plain_scan_gives(seed):
    rng = random.Random(seed)
    nodes = [NodeState(i, Node(f"n{i}", "a", True, 8, cpu_millis=rng.choice((8000, 16000)),
                               memory_mib=65536, max_pods=rng.choice((4, 110))))
             for i in range(40)]
    pool = PoolNodes("a", nodes, rng.choice(("binpack", "spread")), "binpack")
    takes = []
    for _ in range(600):
        k = rng.choice((1, 1, 2, 4, 8))
        cpu = rng.choice((500, 1000, 4000))
        mem = rng.choice((1024, 4096))
        expected = plain_choice(pool, k, cpu, mem)
        assert pool.find_whole(k, cpu, mem) is expected
        if rng.random() < 0.35 and takes:  # a pod goes
            pool.give(takes.pop(rng.randrange(len(takes))))
        elif expected is not None:  # it is placed
            takes.append(pool.place_whole(k, cpu, mem))
        else:  # it waits (asked twice: the pool remembers it had no room); a CPU pod
            assert pool.place_whole(k, cpu, mem) is None  # takes host room on some node
            assert pool.place_whole(k, cpu, mem) is None
            node = rng.choice(nodes)
            if node.fits_host(cpu, mem):
                takes.append(pool.take(node, (), 0, cpu, mem))
    assert all(sum(n.used) <= n.gpus * FULL for n in nodes)


def test_a_pod_that_found_no_room_finds_it_once_a_pod_goes():
    nodes = [NodeState(i, Node(f"n{i}", "a", True, 2, gpu_memory_mib=40960)) for i in range(2)]
    pool = PoolNodes("a", nodes, "binpack", "binpack")
    takes = [pool.place_fraction(1, 600, None, 0, 0) for _ in range(4)]
    assert [t.node.name for t in takes] == ["n0", "n0", "n1", "n1"]
    assert pool.place_fraction(1, 600, None, 0, 0) is None
    assert pool.place_fraction(1, 600, None, 0, 0) is None  # remembered
    assert pool.place_fraction(1, 400, None, 0, 0).node.name == "n0"  # another shape
    pool.give(takes[2])
    again = pool.place_fraction(1, 600, None, 0, 0)
    assert (again.node.name, again.devices) == ("n1", takes[2].devices)
    assert pool.place_whole(1, 0, 0) is None
    pool.give(takes[3])
    pool.give(again)
    assert pool.place_whole(2, 0, 0).node.name == "n1"
