"""The node-level scheduler in the lifecycle service, against a real PostgreSQL and a
Kubernetes stand-in: pools' settings kept across a restart, fraction pods from the pod watch
moved with annotations and Events, and sent home when the pool turns it off."""

import pytest

from fairway_contracts.events import NodePoolChanged
from tests.lifecycle.podfactory import pod
from tests.lifecycle.test_controller import FakeKube, started

pytestmark = pytest.mark.infra

MEM = 81920


class RecordingKube(FakeKube):
    """Also annotates pods (kept, so the next look sees them) and records Events."""

    def __init__(self):
        super().__init__()
        self.notes: dict[tuple[str, str], dict[str, str]] = {}

    async def annotate(self, namespace, name, annotations):
        self.calls.append(("annotate", name, dict(annotations)))
        self.notes.setdefault((namespace, name), {}).update(annotations)
        return "patched"

    async def record_event(self, pod, reason, message, type_="Normal"):
        self.calls.append(("event", pod["metadata"]["name"], reason, message))


def node(name: str = "nl-1", pool: str = "nl", gpus: int = 2) -> dict:
    return {"metadata": {"name": name, "labels": {"fairway.io/node-pool": pool,
                                                  "nvidia.com/gpu.memory": str(MEM)},
                         "annotations": {"fairway.io/gpu-uuids": "GPU-a,GPU-b"}},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}}}


def notebook(name: str, kube: RecordingKube, device: int = 0) -> dict:
    p = pod(name, workload=f"w-{name}", node="nl-1", stage="running")
    p["metadata"]["namespace"] = "fairway-p"
    p["metadata"]["labels"]["fairway.io/gpu-fraction"] = "true"
    p["metadata"]["annotations"] = {
        "fairway.io/gpu-devices": str(device), "fairway.io/gpu-uuids": "GPU-a",
        "fairway.io/gpu-memory-request-mib": str(MEM // 2),
        "fairway.io/gpu-memory-limit-mib": str(MEM),
        "kubesim.fairway.io/gpu-utilization": "80",
        **kube.notes.get(("fairway-p", name), {})}
    return p


def pool(enabled: bool) -> NodePoolChanged:
    return NodePoolChanged(event_id="e", name="nl", label_key="fairway.io/node-pool",
                           label_value="nl", node_level_scheduler_enabled=enabled)


async def test_pool_settings_survive_a_restart(database_url):
    runtime, service = await started(database_url, RecordingKube())
    try:
        await service.node_pool(pool(True))
    finally:
        await runtime.stop()
    runtime, again = await started(database_url, RecordingKube())
    try:
        again.nodelevel.put_node(node())
        assert not again.nodelevel.enabled("nl-1")
        await again.load_node_pools()
        assert again.nodelevel.enabled("nl-1")
        await again.node_pool(pool(False))
        await again.load_node_pools()
        assert not again.nodelevel.enabled("nl-1")
    finally:
        await runtime.stop()


async def test_fractions_are_moved_with_events_and_sent_home_when_it_is_turned_off(
        database_url):
    kube = RecordingKube()
    runtime, service = await started(database_url, kube)
    try:
        await service.node_pool(pool(True))
        service.nodelevel.put_node(node())
        for name in ("nb-a", "nb-b"):
            service.controller.on_pod("ADDED", notebook(name, kube))
        await service.nodelevel.converge()
        assert [c for c in kube.calls if c[0] == "annotate"] == [
            ("annotate", "nb-b", {"fairway.io/gpu-current-devices": "1",
                                  "fairway.io/gpu-current-memory-limit-mib": str(MEM)})]
        [event] = [c for c in kube.calls if c[0] == "event"]
        assert event[1:3] == ("nb-b", "GpuProcessMoved") and "(spread)" in event[3]
        # the pods as the watch now shows them: nothing more to do
        service.controller.on_pod("MODIFIED", notebook("nb-b", kube))
        kube.calls.clear()
        await service.nodelevel.converge()
        assert kube.calls == []
        # turned off: the moved process goes home, with its own limit
        await service.node_pool(pool(False))
        await service.nodelevel.converge()
        assert [c for c in kube.calls if c[0] == "annotate"] == [
            ("annotate", "nb-b", {"fairway.io/gpu-current-devices": "0",
                                  "fairway.io/gpu-current-memory-limit-mib": str(MEM)})]
    finally:
        await runtime.stop()
