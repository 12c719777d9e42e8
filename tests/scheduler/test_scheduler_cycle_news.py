"""The scheduler announces each cycle that ran (core NATS): what the console's overview
shows as the scheduler's last cycle."""

import asyncio
import uuid

import nats
import pytest

from fairway_bus import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import SchedulingCycle
from fairway_contracts.workloads import Phase, PodSummary
from tests.scheduler.test_scheduler_service import (
    inventory,
    phase_changed,
    start_scheduler,  # noqa: F401
    submitted,
)

pytestmark = pytest.mark.infra


async def test_a_cycle_that_places_a_workload_is_announced(
        nats_url, js, consumers, project, pool, tag, start_scheduler):  # noqa: F811
    nc = await nats.connect(nats_url)
    heard: asyncio.Queue[SchedulingCycle] = asyncio.Queue()

    async def on_cycle(msg) -> None:
        await heard.put(SchedulingCycle.model_validate_json(msg.data))

    await nc.subscribe(subjects.SCHEDULER_CYCLE, cb=on_cycle)
    try:
        wid = str(uuid.uuid4())
        await publish_model(js, subjects.node_inventory(f"n-{tag}-c"),
                            inventory(f"n-{tag}-c", pool, gpus=4), msg_id=f"inv-{tag}-c")
        await publish_model(js, subjects.workload_submitted(project, wid),
                            submitted(wid, project, pool, gpus=2), msg_id=f"sub-{wid}")
        await publish_model(js, subjects.podgroup(project, wid), phase_changed(
            wid, project, 1, Phase.PENDING, [PodSummary(name=f"job-{wid[:6]}-0", gpus=2)]),
            msg_id=f"ph-{wid}-1")
        service = await start_scheduler()
        async with asyncio.timeout(30):
            while (cycle := await heard.get()).placed == 0:
                pass
        assert cycle.instance == service.runtime.instance
        assert cycle.took_seconds >= 0 and cycle.evicted == 0
    finally:
        await nc.close()
