"""A memory fraction no GPU of its pools could hold is refused at the door, naming the sizes."""

from datetime import UTC, datetime

import pytest

from fairway_contracts.events import NodeInventory
from fairway_contracts.workloads import Compute
from fairway_submission.workloads.checks import check_gpu_memory

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NODES = [NodeInventory(name="a1", node_pool="a100", ready=True, gpus=8, gpu_memory_mib=81920,
                       observed_at=NOW),
         NodeInventory(name="t1", node_pool="t4", ready=True, gpus=4, gpu_memory_mib=15360,
                       observed_at=NOW),
         NodeInventory(name="c1", node_pool="cpu", ready=True, gpus=0, observed_at=NOW)]


def memory(size: str) -> Compute:
    return Compute(gpu_request_type="memory", gpu_memory_request=size, gpu_devices_request=1)


@pytest.mark.parametrize(("size", "pools", "inventory", "refused"), [
    ("10Gi", [], NODES, False),
    ("80Gi", [], NODES, False),
    ("81Gi", [], NODES, True),
    ("20Gi", ["t4"], NODES, True),
    ("20Gi", ["t4", "a100"], NODES, False),
    ("200Gi", [], [], False),                       # no inventory yet: nothing to compare with
    ("1Gi", ["cpu"], NODES, False),                 # no GPU there: the scheduler says so
])
def test_memory_fraction_against_the_largest_gpu(size, pools, inventory, refused):
    problems = check_gpu_memory(memory(size), pools, inventory)
    assert bool(problems) is refused
    if refused:
        assert problems[0]["field"] == "spec.compute.gpuMemoryRequest"
        assert "the largest has" in problems[0]["reason"]


def test_portions_and_whole_gpus_are_not_checked_against_memory():
    assert check_gpu_memory(Compute(gpu_devices_request=8), [], NODES) == []
    assert check_gpu_memory(Compute(gpu_request_type="portion", gpu_portion_request=0.5,
                                    gpu_devices_request=1), [], NODES) == []
