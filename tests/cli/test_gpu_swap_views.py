"""How the CLI shows GPU memory swap: a fraction's swapped memory and activity in `describe`,
and per device what is swapped out and the utilization in `top nodes`."""

from rich.console import Console

from fairway_cli.org_commands import _devices_table
from fairway_cli.workload_commands import _pod_gpu


def test_describe_says_what_of_a_fraction_is_swapped_out_and_whether_it_is_active():
    pod = {"gpuPortion": 0.6, "gpuDevices": [0], "gpuMemoryUsedMib": 0,
           "gpuMemoryLimitMib": 49152, "gpuSwappedMib": 49152, "gpuActive": False}
    assert _pod_gpu(pod) == ("0.6 of device 0, memory 0/49152 MiB, 49152 MiB swapped out to "
                             "host memory, idle")
    pod.update(gpuSwappedMib=0, gpuActive=True, gpuMemoryUsedMib=49152)
    assert _pod_gpu(pod).endswith("memory 49152/49152 MiB, active")
    assert _pod_gpu({"gpuPortion": 0.5, "gpuDevices": [1]}) == "0.5 of device 1"


def test_top_nodes_marks_swapped_out_pods_and_shows_swapped_memory_and_utilization():
    pods = [{"name": n, "countedHere": True, "runsHere": True, "memorySwappedMib": s}
            for n, s in (("a", 0), ("b", 49152), ("c", 49152))]
    device = {"index": 0, "memoryMib": 81920, "pods": pods, "memoryRequestedMib": 3 * 49152,
              "memoryInUseMib": 49152, "memorySwappedMib": 2 * 49152,
              "utilizationPercent": 70.0}
    console = Console(width=200, record=True)
    console.print(_devices_table([("sw-1", device)]))
    text = console.export_text()
    assert "SWAPPED" in text and "UTIL" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("sw-1"))
    assert "a b⇣ c⇣" in row and "144" in row and "96" in row and "70%" in row, row
