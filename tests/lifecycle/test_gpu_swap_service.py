"""GPU memory swap in the lifecycle service, against a real PostgreSQL and a Kubernetes
stand-in: pools' swap settings kept across a restart, idle fractions of an oversubscribed
device swapped out and active ones in, with annotations, Events and byte counters, and all
swapped back in when the pool turns swap off."""

import pytest
from prometheus_client import REGISTRY

from fairway_contracts.events import NodePoolChanged
from tests.lifecycle.podfactory import pod
from tests.lifecycle.test_controller import started
from tests.lifecycle.test_nodelevel_service import RecordingKube

pytestmark = pytest.mark.infra

MEM = 81920
SIXTY = 49152


def node(swap_capable: bool = True) -> dict:
    labels = {"fairway.io/node-pool": "sw", "nvidia.com/gpu.memory": str(MEM)}
    if swap_capable:
        labels["fairway.io/gpu-swap"] = "true"
    return {"metadata": {"name": "sw-1", "labels": labels,
                         "annotations": {"fairway.io/gpu-uuids": "GPU-a"}},
            "status": {"allocatable": {"nvidia.com/gpu": "1"}}}


def fraction(name: str, kube: RecordingKube, active: bool) -> dict:
    p = pod(name, workload=f"w-{name}", node="sw-1", stage="running")
    p["metadata"]["namespace"] = "fairway-p"
    p["metadata"]["labels"]["fairway.io/gpu-fraction"] = "true"
    p["metadata"]["annotations"] = {
        "fairway.io/gpu-devices": "0", "fairway.io/gpu-uuids": "GPU-a",
        "fairway.io/gpu-memory-request-mib": str(SIXTY),
        "fairway.io/gpu-memory-limit-mib": str(SIXTY),
        "kubesim.fairway.io/gpu-active": "true" if active else "false",
        **kube.notes.get(("fairway-p", name), {})}
    return p


def pool(enabled: bool) -> NodePoolChanged:
    return NodePoolChanged(event_id="e", name="sw", label_key="fairway.io/node-pool",
                           label_value="sw", swap_enabled=enabled,
                           cpu_swap_memory_mib=102400, reserved_gpu_memory_for_swap_mib=8192)


def swapped_bytes(direction: str) -> float:
    return REGISTRY.get_sample_value("fairway_lifecycle_gpu_swap_bytes_total",
                                     {"direction": direction}) or 0.0


def swaps(kube: RecordingKube) -> list:
    return [c for c in kube.calls if c[0] == "annotate"]


async def test_swap_settings_survive_a_restart(database_url):
    runtime, service = await started(database_url, RecordingKube())
    try:
        await service.node_pool(pool(True))
    finally:
        await runtime.stop()
    runtime, again = await started(database_url, RecordingKube())
    try:
        again.nodelevel.put_node(node())
        assert again.nodelevel.swap_of("sw-1") is None
        await again.load_node_pools()
        swap = again.nodelevel.swap_of("sw-1")
        assert (swap.host_mib, swap.reserved_mib) == (102400, 8192)
        again.nodelevel.put_node(node(swap_capable=False))
        assert again.nodelevel.swap_of("sw-1") is None  # not a swap-capable node
    finally:
        await runtime.stop()


async def test_idle_fractions_are_swapped_out_and_in_with_events(database_url):
    kube = RecordingKube()
    runtime, service = await started(database_url, kube)
    out_before, in_before = swapped_bytes("out"), swapped_bytes("in")
    try:
        await service.node_pool(pool(True))
        service.nodelevel.put_node(node())
        activity = {"a": True, "b": False, "c": False}
        for name, active in activity.items():
            service.controller.on_pod("ADDED", fraction(name, kube, active))
        await service.nodelevel.converge()
        # the active one is marked as managed (nothing swapped), the idle ones swapped out
        assert swaps(kube) == [("annotate", "a", {"fairway.io/gpu-swapped-mib": "0"}),
                               ("annotate", "b", {"fairway.io/gpu-swapped-mib": str(SIXTY)}),
                               ("annotate", "c", {"fairway.io/gpu-swapped-mib": str(SIXTY)})]
        events = [c[1:3] for c in kube.calls if c[0] == "event"]
        assert events == [("b", "GpuMemorySwappedOut"), ("c", "GpuMemorySwappedOut")]
        assert swapped_bytes("out") - out_before == 2 * SIXTY * 2**20
        # looked at again before the watch brings the writes back: nothing twice
        kube.calls.clear()
        await service.nodelevel.converge()
        assert kube.calls == []
        # activity switches from a to c: c comes in, a goes out
        activity = {"a": False, "b": False, "c": True}
        for name, active in activity.items():
            service.controller.on_pod("MODIFIED", fraction(name, kube, active))
        await service.nodelevel.converge()
        assert swaps(kube) == [("annotate", "a", {"fairway.io/gpu-swapped-mib": str(SIXTY)}),
                               ("annotate", "c", {"fairway.io/gpu-swapped-mib": "0"})]
        assert swapped_bytes("in") - in_before == SIXTY * 2**20
        assert REGISTRY.get_sample_value("fairway_lifecycle_gpu_swap_host_memory_bytes",
                                         {"node": "sw-1"}) == 2 * SIXTY * 2**20
        # swap turned off: everything comes back in
        for name, active in activity.items():
            service.controller.on_pod("MODIFIED", fraction(name, kube, active))
        kube.calls.clear()
        await service.node_pool(pool(False))
        await service.nodelevel.converge()
        assert swaps(kube) == [("annotate", "a", {"fairway.io/gpu-swapped-mib": "0"}),
                               ("annotate", "b", {"fairway.io/gpu-swapped-mib": "0"})]
    finally:
        await runtime.stop()
