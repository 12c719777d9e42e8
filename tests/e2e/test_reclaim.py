"""Reclaim end to end (issue 5): a project that arrives late gets its fair share back from one
that borrowed; the borrower's workloads return to Pending with the reason, then run again when
room appears. A stack of its own, on a one-node cluster, so that reclaim touches no other test's
workloads."""

import asyncio
import time

import pytest

from tests.e2e.conftest import PhaseRecorder, admin_client, stack_of_its_own

pytestmark = pytest.mark.e2e

PROFILE = """
cluster:
  nodePools:
    - {name: rc, labelKey: fairway.io/node-pool, labelValue: rc}
  nodes:
    - name: rc-1
      labels: {fairway.io/node-pool: rc}
      gpus: 4
      gpuMemoryMiB: 40960
      cpuMillis: 64000
      memoryMiB: 262144
"""


@pytest.fixture(scope="module")
def reclaim_stack(tmp_path_factory):
    with stack_of_its_own(tmp_path_factory, "reclaim", PROFILE) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(reclaim_stack):
    with admin_client(reclaim_stack) as client:
        yield client


def project(api, name: str) -> str:
    response = api.post("/api/v1/org-unit/projects", json={
        "name": name, "resources": [{"nodePool": {"name": "rc"}, "gpu": {"deserved": 2}}]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def train(api, project_id: str, name: str) -> str:
    response = api.post("/api/v1/workloads/trainings", json={
        "name": name, "projectId": project_id, "spec": {
            "image": "busybox", "nodePools": ["rc"], "compute": {"gpuDevicesRequest": 1}}})
    assert response.status_code == 202, response.text
    return response.json()["workloadId"]


def phases_of(api, ids: list[str]) -> dict[str, str]:
    return {wid: api.get(f"/api/v1/workloads/{wid}").json()["phase"] for wid in ids}


def wait_until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_late_project_reclaims_its_fair_share_and_the_borrower_runs_again(
        api, reclaim_stack):
    pool = api.post("/api/v1/node-pools", json={
        "name": "rc", "labelKey": "fairway.io/node-pool", "labelValue": "rc"})
    assert pool.status_code in (201, 409), pool.text
    borrower, late = project(api, "borrower"), project(api, "late")

    # The borrower takes the whole node while nobody else wants it.
    lent = [train(api, borrower, f"borrowed-{i}") for i in range(4)]
    wait_until(lambda: set(phases_of(api, lent).values()) == {"Running"}, "the borrower to run")

    # The late project asks for its fair share (2 of the 4 GPUs): two of the borrower's jobs
    # are preempted, and the late project's jobs run.
    mine = [train(api, late, f"mine-{i}") for i in range(2)]
    wait_until(lambda: set(phases_of(api, mine).values()) == {"Running"},
               "the late project to run", timeout=90)
    now = phases_of(api, lent)
    preempted = [wid for wid, phase in now.items() if phase == "Pending"]
    assert len(preempted) == 2 and list(now.values()).count("Running") == 2, now

    # Each preempted one went Running -> Pending, saying it was preempted.
    recorder = PhaseRecorder(reclaim_stack.nats_url)
    for wid in preempted:
        started = await recorder.read(wid, until={"Running"})
        [pending] = await recorder.read(wid, until={"Pending"}, skip=len(started))
        assert pending["reason"] == "Preempted", pending
        # ... in the scheduler's words: which project needed the room, and why.
        assert "(reclaim)" in pending["message"] and "fair share" in pending["message"], pending
    # ... and the API says why it waits now.
    view = api.get(f"/api/v1/workloads/{preempted[0]}").json()
    assert view["phase"] == "Pending" and view["phaseMessage"], view

    # Nothing oscillates: the shares stay as they are.
    await asyncio.sleep(3)
    assert phases_of(api, mine) == dict.fromkeys(mine, "Running")
    assert sorted(phases_of(api, lent).values()) == ["Pending", "Pending", "Running", "Running"]

    # Room appears (the late project's work is deleted): the borrower's jobs run again.
    for wid in mine:
        assert api.delete(f"/api/v1/workloads/trainings/{wid}").status_code == 202
    wait_until(lambda: set(phases_of(api, lent).values()) == {"Running"},
               "the preempted jobs to run again", timeout=90)
