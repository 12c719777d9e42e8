"""Lifecycle keeps every workload's phase story legal, complete and free of duplicates while
kubesim drops its watches, answers 410 and lifecycle itself is killed and restarted."""

import asyncio
import json
import signal
import time
from collections import defaultdict

import httpx
import nats
import pytest

from fairway_bus.settings import nats_servers

pytestmark = pytest.mark.e2e

COUNT = 200
ORDER = ["Creating", "Pending", "Initializing", "Running", "Completed"]
# Going back to Pending is legal only for a retry, a preemption, an eviction, a pod its node
# refused when it was bound (made again, no retry spent) or GPU memory taken back before it ran
# (docs/replay-format.md lists the reasons).
BACKWARDS_REASONS = {"Retrying", "Preempted", "Evicted", "NodeRejected", "GpuMemoryReclaimed"}


def legal(previous: str | None, event: dict) -> bool:
    phase = event["phase"]
    if previous is None:
        return phase == "Creating"
    if phase == "Degraded" or previous == "Degraded":
        return phase != "Creating"
    if phase == "Failed":
        return True
    if ORDER.index(phase) > ORDER.index(previous):
        return True  # forward, possibly over phases that passed while nobody watched
    return phase == "Pending" and event["reason"] in BACKWARDS_REASONS


async def all_phase_events(nats_url: str, project: str) -> dict[str, list[dict]]:
    nc = await nats.connect(nats_servers(nats_url))
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"fairway.phase.{project}.>", stream="FAIRWAY_PHASES",
                                 ordered_consumer=True)
        by_workload: dict[str, list[dict]] = defaultdict(list)
        while True:
            try:
                msg = await sub.next_msg(timeout=2)
            except nats.errors.TimeoutError:
                return by_workload
            event = json.loads(msg.data)
            by_workload[event["workloadId"]].append(event)
    finally:
        await nc.close()


def assert_legal_stories(stories: dict[str, list[dict]], ids: list[str],
                         final: str = "Completed") -> None:
    """Every workload's phase events: numbered 1, 2, 3... with none missing or repeated, each
    naming the phase before it, never the same phase twice in a row, every step a legal one,
    and ending in `final`."""
    for wid in ids:
        story = stories[wid]
        told = [f"{e['phase']} ({e['reason']})" for e in story]  # for a failure's message
        assert [e["sequence"] for e in story] == list(range(1, len(story) + 1)), (wid, told)
        assert story and story[-1]["phase"] == final, (wid, told)
        previous = None
        for event in story:
            assert event["previousPhase"] == previous, (wid, event)
            assert event["phase"] != previous, (wid, "a transition repeated", told)
            assert legal(previous, event), (wid, told)
            previous = event["phase"]


async def test_watch_faults_and_a_lifecycle_restart_lose_and_repeat_nothing(
        api, default_project_id, stack):
    kubesim = stack.info()["processes"]["kubesim"]["url"]
    admin = httpx.Client(base_url=kubesim, timeout=10)
    ids = []
    for i in range(COUNT):
        body = {"name": f"robust-{i}", "projectId": default_project_id, "spec": {
            "image": "busybox", "annotations": [
                {"name": "sim.fairway.io/run-seconds", "value": "2"}]}}
        response = api.post("/api/v1/workloads/trainings", json=body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["workloadId"])
        if i == COUNT // 4:
            assert admin.post("/admin/watches/drop").status_code == 200
        if i == COUNT // 2:
            assert admin.post("/admin/watches/expire", json={"count": 3}).status_code == 200
            assert admin.post("/admin/watches/drop").status_code == 200
        if i == 3 * COUNT // 4:
            stack.kill_service("lifecycle", signal.SIGKILL)
            stack.restart_service("lifecycle")

    deadline = time.monotonic() + 180
    remaining = set(ids)
    while remaining and time.monotonic() < deadline:
        page = api.get("/api/v1/workloads", params={
            "filterBy": "name=@robust-", "limit": 500}).json()["workloads"]
        remaining = {w["workloadId"] for w in page if w["phase"] not in ("Completed", "Failed")}
        await asyncio.sleep(1)
    assert not remaining, f"{len(remaining)} workloads never finished"

    assert_legal_stories(await all_phase_events(stack.nats_url, "default"), ids)
