"""The device view of a GPU node (pure): which pods each device counts and which run on it,
and the GPU memory requested and in use per device."""

from fairway_submission.core.devices import device_views

MEM = 81920


def fraction(name: str, counted: int, runs: int | None = None, used: int | None = None,
             portion: float = 0.5) -> dict:
    pod = {"name": name, "phase": "Running", "gpus": 0, "gpuDevices": [counted],
           "gpuPortion": portion, "gpuMemoryLimitMib": MEM, "gpuMemoryUsedMib": used,
           "workloadId": f"id-{name}", "workloadName": name}
    if runs is not None:
        pod.update(gpuCurrentDevices=[runs], gpuCurrentMemoryLimitMib=MEM, gpuProcessRestarts=1)
    return pod


def test_a_moved_fraction_is_counted_where_placed_and_uses_memory_where_it_runs():
    devices = device_views(2, MEM, [fraction("a", 0, used=61440),
                                    fraction("b", 0, runs=1, used=61440)])
    zero, one = devices
    assert [(p["name"], p["countedHere"], p["runsHere"]) for p in zero["pods"]] == [
        ("a", True, True), ("b", True, False)]
    assert zero["memoryRequestedMib"] == MEM and zero["memoryInUseMib"] == 61440
    assert [(p["name"], p["countedHere"], p["runsHere"], p["memoryUsedMib"])
            for p in one["pods"]] == [("b", False, True, 61440)]
    assert one["memoryRequestedMib"] == 0 and one["memoryInUseMib"] == 61440
    assert one["pods"][0]["gpuProcessRestarts"] == 1


def test_whole_gpus_count_the_device_memory_and_unknown_devices_are_ignored():
    whole = {"name": "w", "phase": "Running", "gpus": 1, "gpuDevices": [1]}
    stray = fraction("s", 7)
    devices = device_views(2, MEM, [whole, stray])
    assert devices[0]["pods"] == []
    assert devices[1]["memoryRequestedMib"] == MEM
    assert devices[1]["pods"][0]["gpuPortion"] is None
    assert device_views(1, None, [fraction("x", 0)])[0]["memoryRequestedMib"] == 0


def test_an_oversubscribed_device_shows_what_is_swapped_out_and_the_sum_of_utilization():
    pods = []
    for name, active in (("a", True), ("b", False), ("c", False)):
        pod = fraction(name, 0, used=49152 if active else 0, portion=0.6)
        pod.update(gpuActive=active, gpuSwappedMib=0 if active else 49152,
                   gpuUtilizationPercent=70.0 if active else 0.0)
        pods.append(pod)
    [device] = device_views(1, MEM, pods)
    assert device["memoryRequestedMib"] == 3 * 49152  # requests: more than the device has
    assert (device["memoryInUseMib"], device["memorySwappedMib"]) == (49152, 2 * 49152)
    assert device["utilizationPercent"] == 70.0
    assert [(p["name"], p["gpuActive"], p["memorySwappedMib"]) for p in device["pods"]] == [
        ("a", True, 0), ("b", False, 49152), ("c", False, 49152)]
    assert device_views(1, MEM, [fraction("x", 0)])[0]["utilizationPercent"] is None
