"""GPU fractions through the scheduler service (real NATS JetStream and PostgreSQL): a
fractional effective spec in WorkloadSubmitted comes out as a bind decision naming the device,
the portion, the GPU memory and the limit; memory is converted with the node's GPU memory and a
partly used device is filled before an empty one."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from fairway_bus import publish_model
from fairway_contracts import streams, subjects
from fairway_contracts.events import BindDecision, NodeInventory, WorkloadSubmitted
from fairway_contracts.workloads import EffectiveSpec, Phase, PodSummary, WorkloadType

from .test_scheduler_service import phase_changed, start_scheduler  # noqa: F401 (fixture)

pytestmark = pytest.mark.infra

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A100_MIB = 81920


def fraction(wid: str, project: str, pool: str, at: int, **compute) -> WorkloadSubmitted:
    return WorkloadSubmitted(
        event_id=f"sub-{wid}", workload_id=wid, name=f"job-{wid[:6]}", project=project,
        project_id=f"id-{project}", workload_type=WorkloadType.TRAINING,
        created_at=T0 + timedelta(seconds=at), created_by="alice",
        spec=EffectiveSpec(image="pytorch", priority_class="train", preemptible=True,
                           backoff_limit=6, node_pools=[pool],
                           compute={"gpu_devices_request": 1, **compute}),
    )


@pytest.fixture
async def bind(js, consumers, project, pool, tag, start_scheduler, stored_messages,  # noqa: F811
               eventually):
    """Submit one fraction (with its pending pod) to a scheduler over one node of two A100
    80GB devices; its pod's placement, once decided."""
    node = f"n-{tag}-0"
    await publish_model(js, subjects.node_inventory(node),
                        NodeInventory(name=node, node_pool=pool, ready=True, gpus=2,
                                      gpu_product="NVIDIA-A100-SXM4-80GB",
                                      gpu_memory_mib=A100_MIB, observed_at=T0),
                        msg_id=f"inv-{tag}-0")
    await start_scheduler()

    async def decide(at: int, **compute):
        wid = str(uuid.uuid4())
        await publish_model(js, subjects.workload_submitted(project, wid),
                            fraction(wid, project, pool, at, **compute), msg_id=f"sub-{wid}")
        await publish_model(js, subjects.podgroup(project, wid),
                            phase_changed(wid, project, 1, Phase.PENDING,
                                          [PodSummary(name=f"job-{wid[:6]}-0", gpus=0)]),
                            msg_id=f"ph-{wid}-1")
        [message] = await eventually(
            lambda: stored_messages(streams.DECISIONS.name, subjects.bind(project, wid)))
        [placement] = BindDecision.model_validate_json(message.data).placements
        assert placement.node == node
        return placement

    return decide


async def test_fractions_bind_to_a_device_with_portion_memory_and_limit(bind):
    # A memory fraction: 40Gi of an 80Gi device is half of it.
    memory = await bind(0, gpu_request_type="memory", gpu_memory_request="40Gi")
    assert (memory.gpu_devices, memory.portion, memory.gpu_memory_mib) == ([0], 0.5, 40960)
    # A quarter goes beside it on the partly used device 0, not on the empty device 1.
    quarter = await bind(1, gpu_request_type="portion", gpu_portion_request=0.25,
                         gpu_portion_limit=0.5)
    assert (quarter.gpu_devices, quarter.portion, quarter.gpu_limit) == ([0], 0.25, 0.5)
    # Half does not fit in device 0's last quarter: it takes device 1.
    half = await bind(2, gpu_request_type="portion", gpu_portion_request=0.5)
    assert (half.gpu_devices, half.portion) == ([1], 0.5)


async def test_a_memory_limit_is_carried_as_a_portion_of_the_device(bind):
    # design-16: for memory limits, portion limit = limit MiB / device MiB (60Gi of 80Gi).
    memory = await bind(0, gpu_request_type="memory", gpu_memory_request="40Gi",
                        gpu_memory_limit="60Gi")
    assert memory.gpu_limit == 0.75
