"""GPU memory swap on the node (core/swap.py): scenario tables of one node's fractions, their
activity and what is swapped out now, and what each device keeps in memory."""

import pytest

from fairway_lifecycle.core.swap import SwapChange, SwapPod, changes, host_used_mib, swapped

MEM = 81920
RESERVE = 8192
SIXTY = 49152  # 0.6 of the device


def pod(name: str, active: bool, *, device: int = 0, request: int = SIXTY,
        out: bool = False) -> SwapPod:
    return SwapPod(("ns", name), device, request, active, request if out else 0)


@pytest.mark.parametrize(("why", "pods", "expected"), [
    ("within the device's memory: nothing is swapped, active or not",
     [pod("a", False, request=40960), pod("b", False, request=40960)], {"a": 0, "b": 0}),
    ("three of 0.6, one active: only the active one holds device memory",
     [pod("a", False), pod("b", True), pod("c", False)],
     {"a": SIXTY, "b": 0, "c": SIXTY}),
    ("none active: the first idle one stays in (it fits), the others go out",
     [pod("a", False), pod("b", False), pod("c", False)],
     {"a": 0, "b": SIXTY, "c": SIXTY}),
    ("activity switches: the newly active one comes in, the now idle one goes out",
     [pod("a", False), pod("b", False, out=True), pod("c", True, out=True)],
     {"a": SIXTY, "b": SIXTY, "c": 0}),
    ("stable: an idle one already in stays in rather than trading places with another idle",
     [pod("a", False, out=True), pod("b", False)], {"a": SIXTY, "b": 0}),
    ("two active that do not fit together: the one in memory keeps it, the other waits out",
     [pod("a", True, out=True), pod("b", True)], {"a": SIXTY, "b": 0}),
    ("small idle ones fill what the active one leaves, less the reserve",
     [pod("a", True), pod("b", False, request=20000), pod("c", False, request=20000)],
     {"a": 0, "b": 0, "c": 20000}),
    ("each device on its own: an oversubscribed device swaps, the other does not",
     [pod("a", True), pod("b", False), pod("c", False, device=1)],
     {"a": 0, "b": SIXTY, "c": 0}),
])
def test_swapped(why, pods, expected):
    decided = swapped(MEM, RESERVE, pods)
    assert {k[1]: v for k, v in decided.items()} == expected, why


def test_changes_say_which_way_the_memory_moves_and_host_memory_is_counted():
    pods = [pod("a", False), pod("b", False, out=True), pod("c", True, out=True)]
    decided = swapped(MEM, RESERVE, pods)
    assert changes(pods, decided) == [SwapChange(("ns", "a"), "out", SIXTY),
                                      SwapChange(("ns", "c"), "in", SIXTY)]
    assert host_used_mib(decided) == 2 * SIXTY
    # once done, the same node gives the same answer: nothing moves
    after = [SwapPod(p.key, p.device, p.request_mib, p.active, decided[p.key]) for p in pods]
    assert swapped(MEM, RESERVE, after) == decided
    assert changes(after, swapped(MEM, RESERVE, after)) == []


def test_a_swapped_fraction_shows_in_its_pod_view_and_each_swap_is_a_new_view():
    from fairway_lifecycle.core.fold import pod_group_signature, summarize
    from tests.lifecycle.podfactory import pod

    p = pod("sw-b", workload="w", node="sw-1", stage="running")
    p["metadata"]["labels"]["fairway.io/gpu-fraction"] = "true"
    p["metadata"]["annotations"] = {"fairway.io/gpu-devices": "0",
                                    "fairway.io/gpu-memory-request-mib": str(SIXTY),
                                    "kubesim.fairway.io/gpu-memory-used-mib": str(SIXTY),
                                    "kubesim.fairway.io/gpu-utilization": "70"}
    unmanaged = pod_group_signature([p])
    [view] = summarize([p])
    assert (view.gpu_active, view.gpu_swapped_mib, view.gpu_utilization_percent) == (
        None, None, 70.0)
    p["metadata"]["annotations"].update({"fairway.io/gpu-swapped-mib": str(SIXTY),
                                         "kubesim.fairway.io/gpu-active": "false"})
    asked = pod_group_signature([p])
    assert asked != unmanaged
    p["metadata"]["annotations"].update({"kubesim.fairway.io/gpu-swapped-mib": str(SIXTY),
                                         "kubesim.fairway.io/gpu-memory-used-mib": "0",
                                         "kubesim.fairway.io/gpu-utilization": "0"})
    assert pod_group_signature([p]) != asked
    [view] = summarize([p])
    assert (view.gpu_active, view.gpu_swapped_mib, view.gpu_memory_used_mib) == (
        False, SIXTY, 0)
