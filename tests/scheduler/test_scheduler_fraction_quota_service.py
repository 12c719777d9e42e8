"""Quota counts a fraction by its portion, through the scheduler service: a project allowed one
GPU runs two half-GPU workloads on one device and the third waits, its pending reason and the
queue status in fractional figures."""

import uuid
from datetime import timedelta

import pytest

from fairway_bus import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import (
    BindDecision,
    DepartmentChanged,
    NodePoolChanged,
    PoolResources,
    ProjectChanged,
    QueueStatusChanged,
    Quota,
    WorkloadSubmitted,
)
from fairway_contracts.workloads import EffectiveSpec, Phase, WorkloadType

from .test_scheduler_fair_share_service import (  # noqa: F401 (fixtures)
    LABEL,
    T0,
    _last_pending,
    fs_consumers,
    messages,
    names,
    pod_group,
    publish_nodes,
    start_scheduler,
)

pytestmark = pytest.mark.infra


def half(wid: str, project: str, at: int) -> WorkloadSubmitted:
    return WorkloadSubmitted(
        event_id=f"sub-{wid}", workload_id=wid, name=f"job-{wid[:8]}", project=project,
        project_id=f"id-{project}", workload_type=WorkloadType.TRAINING,
        created_at=T0 + timedelta(seconds=at), created_by="alice",
        spec=EffectiveSpec(image="pytorch", priority_class="train", preemptible=True,
                           backoff_limit=6,
                           compute={"gpu_devices_request": 1, "gpu_request_type": "portion",
                                    "gpu_portion_request": 0.5}),
    )


async def test_a_project_allowed_one_gpu_runs_two_halves_and_the_third_waits(
        js, tag, names, fs_consumers, start_scheduler, stored_messages,  # noqa: F811
        eventually):
    a, pool = names["a"], names["pool"]
    await publish_model(js, subjects.org_node_pool(pool),
                        NodePoolChanged(event_id=f"np-{tag}", name=pool, label_key=LABEL,
                                        label_value=pool), msg_id=f"np-{tag}")
    await publish_model(js, subjects.org_department(f"dep-{tag}"),
                        DepartmentChanged(event_id=f"dep-{tag}", department_id=f"dep-{tag}",
                                          name=names["dept"],
                                          resources=[PoolResources(node_pool=pool,
                                                                   gpu=Quota(deserved=24))]),
                        msg_id=f"dep-{tag}")
    await publish_model(js, subjects.org_project(f"id-{tag}-a"),
                        ProjectChanged(event_id=f"prj-{tag}-a", project_id=f"id-{tag}-a",
                                       name=a, department_id=f"dep-{tag}",
                                       resources=[PoolResources(
                                           node_pool=pool, gpu=Quota(deserved=1, limit=1))]),
                        msg_id=f"prj-{tag}-a")
    await publish_nodes(js, tag, pool)
    wids = [str(uuid.uuid4()) for _ in range(3)]
    for at, wid in enumerate(wids):
        await publish_model(js, subjects.workload_submitted(a, wid), half(wid, a, at),
                            msg_id=f"sub-{wid}")
        await publish_model(js, subjects.podgroup(a, wid), pod_group(wid, a, 1, Phase.PENDING),
                            msg_id=f"pg-{wid}-1")
    await start_scheduler()

    async def bound(wid: str):
        return await messages(js, stored_messages, subjects.bind(a, wid))

    placements = []
    for wid in wids[:2]:
        [message] = await eventually(lambda w=wid: bound(w), timeout=30)
        [placement] = BindDecision.model_validate_json(message.data).placements
        placements.append((placement.node, placement.gpu_devices, placement.portion))
    # Both halves share one device (the second packs beside the first).
    assert placements[0] == placements[1] and placements[0][2] == 0.5
    pending = await eventually(lambda: _last_pending(js, stored_messages, a, wids[2]),
                               timeout=30)
    assert await bound(wids[2]) == []
    assert not pending.unschedulable
    assert (pending.code, pending.message) == (
        "OverLimit", f"project {a} uses 1 GPU of its limit of 1 GPU in node pool {pool} and this"
        " workload needs 0.5 GPUs more")

    status = QueueStatusChanged.model_validate_json(
        (await messages(js, stored_messages, subjects.queue_status("project", a, pool)))[-1].data)
    assert (status.gpu.allocated, status.gpu.requested) == (1.0, 1.5)
