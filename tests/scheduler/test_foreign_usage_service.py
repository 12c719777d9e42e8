"""Foreign usage through the scheduler service (real NATS and PostgreSQL): a node's inventory
with GPUs another scheduler holds sends the workload elsewhere, and the usage is stored so a
restarted scheduler still sees it."""

import uuid

import pytest

from fairway_bus import publish_model
from fairway_contracts import streams, subjects
from fairway_contracts.events import BindDecision, ForeignUsage
from fairway_contracts.workloads import Phase, PodSummary
from tests.scheduler.test_scheduler_service import (  # noqa: F401 (fixtures)
    db,
    inventory,
    phase_changed,
    start_scheduler,
    submitted,
)

pytestmark = pytest.mark.infra


async def test_gpus_another_scheduler_holds_send_the_workload_elsewhere(
        js, project, pool, tag, db, start_scheduler, stored_messages, eventually):  # noqa: F811
    busy, free = f"n-{tag}-0", f"n-{tag}-1"
    held = inventory(busy, pool, gpus=4).model_copy(
        update={"foreign": ForeignUsage(pods=1, gpus=3, cpu_millis=1000, memory_mib=2048)})
    await publish_model(js, subjects.node_inventory(busy), held, msg_id=f"inv-{tag}-0")
    await publish_model(js, subjects.node_inventory(free), inventory(free, pool, gpus=4),
                        msg_id=f"inv-{tag}-1")
    service = await start_scheduler()
    assert await eventually(lambda: db.fetchval(
        "SELECT foreign_gpus = 3 AND foreign_pods = 1 AND foreign_memory_mib = 2048"
        " FROM nodes WHERE name = $1", busy))

    wid = str(uuid.uuid4())
    pod = f"job-{wid[:6]}-0"
    await publish_model(js, subjects.workload_submitted(project, wid),
                        submitted(wid, project, pool, gpus=2), msg_id=f"sub-{wid}")
    await publish_model(js, subjects.podgroup(project, wid),
                        phase_changed(wid, project, 1, Phase.PENDING,
                                      [PodSummary(name=pod, gpus=2)]), msg_id=f"ph-{wid}-1")
    [message] = await eventually(
        lambda: stored_messages(streams.DECISIONS.name, subjects.bind(project, wid)))
    decision = BindDecision.model_validate_json(message.data)
    assert [(p.node, p.gpu_devices) for p in decision.placements] == [(free, [0, 1])]

    # a restart reads the usage back from its table, before any inventory arrives again
    await service.runtime.stop()
    service = await start_scheduler()
    assert service.state.foreign[busy] == (1, 3, 1000, 2048)
