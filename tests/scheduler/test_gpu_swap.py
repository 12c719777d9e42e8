"""GPU memory swap admission (core/swap.py): table tests of the host memory a device's
fractions may need, and of where a fraction may go by oversubscribing a device."""

import pytest

from fairway_scheduler.core.swap import GpuSwap, device_host_need, node_host_need, swap_fit

DEVICE = 81920  # MiB
SIXTY = 49152  # 0.6 of it


@pytest.mark.parametrize(("shares", "need"), [
    ([], 0),
    ([SIXTY], 0),  # within the device: nothing is swapped
    ([40960, 40960], 0),  # exactly full
    ([SIXTY, SIXTY], SIXTY),  # one may be out while the other is in
    ([SIXTY, SIXTY, SIXTY], 2 * SIXTY),  # all but the smallest
    ([10000, 50000, 40000], 90000),  # the smallest stays in whatever is active
])
def test_device_host_need(shares, need):
    assert device_host_need(shares, DEVICE) == need


def test_node_host_need_sums_its_devices():
    assert node_host_need([[SIXTY, SIXTY], [SIXTY], []], DEVICE) == SIXTY


@pytest.mark.parametrize(("devices", "swap", "need", "device", "left"), [
    # a device with fractions takes one more while the host memory lasts
    ([[SIXTY]], GpuSwap(102400, 8192), SIXTY, 0, 102400 - SIXTY),
    ([[SIXTY, SIXTY]], GpuSwap(102400, 8192), SIXTY, 0, 102400 - 2 * SIXTY),
    # not when the host memory would be exceeded: what is left is said
    ([[SIXTY, SIXTY, SIXTY]], GpuSwap(102400, 8192), SIXTY, None, 102400 - 2 * SIXTY),
    # never on a device something else holds (a whole-GPU pod), nor on an empty one
    ([None, []], GpuSwap(102400), SIXTY, None, 102400),
    # the device where it adds the least host need: one swapping already
    ([[40000, 40000], [SIXTY, SIXTY]], GpuSwap(204800), SIXTY, 1, 204800 - 2 * SIXTY),
    # host memory is counted per node, across its devices
    ([[SIXTY, SIXTY], [SIXTY]], GpuSwap(2 * SIXTY), SIXTY, 0, 0),
    ([[SIXTY, SIXTY], [SIXTY]], GpuSwap(2 * SIXTY - 1), SIXTY, None, SIXTY - 1),
])
def test_swap_fit(devices, swap, need, device, left):
    fit = swap_fit(devices, DEVICE, swap, need)
    assert (fit.device, fit.host_left_mib, fit.why) == (device, left, None)


def test_a_fraction_larger_than_the_device_less_its_reserve_never_swaps_in():
    fit = swap_fit([[SIXTY]], DEVICE, GpuSwap(1 << 20, 40000), SIXTY)
    assert fit.device is None
    assert fit.why == ("needs 49152 MiB on a device; a device keeps 40000 MiB of its 81920 MiB "
                       "for swapping, so at most 41920 MiB can be swapped in")


@pytest.mark.parametrize(("optimization", "field"), [
    ({"swapEnabled": True}, "gpuResourceOptimization.cpuSwapMemorySize"),
    ({"swapEnabled": True, "cpuSwapMemorySize": "lots"},
     "gpuResourceOptimization.cpuSwapMemorySize"),
    ({"swapEnabled": "yes", "cpuSwapMemorySize": "1Gi"}, "gpuResourceOptimization.swapEnabled"),
    ({"swapEnabled": True, "cpuSwapMemorySize": "1Gi", "swapMemory": 1},
     "gpuResourceOptimization"),
])
def test_bad_swap_settings_in_a_scenario_name_the_field(optimization, field):
    from fairway_scheduler.simulation import parse_scenario
    from fairway_scheduler.simulation.scenario import ScenarioError

    scenario = {"cluster": {"nodePools": [{"name": "a", "labelKey": "k", "labelValue": "a",
                                           "gpuResourceOptimization": optimization}],
                            "nodes": [{"name": "n", "gpus": 1}]}}
    with pytest.raises(ScenarioError, match=field):
        parse_scenario(scenario)


def test_the_pools_swap_settings_and_the_nodes_label_reach_the_snapshot():
    from fairway_contracts.events import NodePoolChanged
    from fairway_scheduler import core
    from fairway_scheduler.core.cluster import ClusterState

    state = ClusterState()
    state.put_node_pool(NodePoolChanged(
        event_id="e", name="sw", label_key="fairway.io/node-pool", label_value="sw",
        swap_enabled=True, cpu_swap_memory_mib=102400, reserved_gpu_memory_for_swap_mib=8192))
    state.put_node_pool(NodePoolChanged(
        event_id="f", name="off", label_key="fairway.io/node-pool", label_value="off",
        swap_enabled=False, cpu_swap_memory_mib=102400))
    for name, pool, swap in (("s1", "sw", True), ("s2", "sw", False), ("o1", "off", True)):
        labels = {"fairway.io/node-pool": pool}
        if swap:
            labels["fairway.io/gpu-swap"] = "true"
        state.put_node(core.Node(name, pool, True, 1, gpu_memory_mib=DEVICE), labels)
    snapshot = state.snapshot()
    assert {p.name: p.swap for p in snapshot.pools} == {
        "sw": GpuSwap(102400, 8192), "off": None}
    assert {n.name: n.gpu_swap for n in snapshot.nodes} == {"s1": True, "s2": False,
                                                             "o1": True}


@pytest.mark.infra
async def test_the_swap_settings_survive_a_restart_of_the_scheduler(database_url):
    """Stored with the pool (migration 012) and read back as the scheduler starts."""
    from pathlib import Path

    import asyncpg

    import fairway_scheduler
    from fairway_contracts.events import NodePoolChanged
    from fairway_scheduler import repository
    from fairway_store.migrations import migrate_dsn

    await migrate_dsn(database_url, "scheduler",
                      Path(fairway_scheduler.__file__).parent / "migrations")
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "scheduler"})
    try:
        event = NodePoolChanged(event_id="e", name="swap-restart", label_key="k",
                                label_value="v", swap_enabled=True, cpu_swap_memory_mib=102400,
                                reserved_gpu_memory_for_swap_mib=2048)
        assert await repository.upsert_node_pool(conn, event, 10**9)
        [stored] = [p for p in await repository.load_node_pools(conn)
                    if p.name == "swap-restart"]
        assert (stored.swap_enabled, stored.cpu_swap_memory_mib,
                stored.reserved_gpu_memory_for_swap_mib) == (True, 102400, 2048)
    finally:
        await conn.close()
