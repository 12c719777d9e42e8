"""What cannot be created fails, once, with the reason; what may pass is retried with a
growing pause. Before: lifecycle retried every failed pod creation twice a second for ever, and
the workload sat in Creating. The controller against a real PostgreSQL, with a Kubernetes API
that refuses (a stand-in with scripted answers, and kubesim, which validates pods as the API
server does)."""

import asyncio
import json
import time

import pytest

from fairway_contracts.events import DeadLetter
from fairway_contracts.workloads import utcnow
from fairway_kubesim import KubeSimThread
from fairway_kubesim.profiles import DEFAULT_PROFILE
from fairway_lifecycle import repository as repo
from fairway_lifecycle.core.deadletters import stalled_workload
from fairway_lifecycle.core.retries import backoff_delay, refusal_is_permanent
from fairway_lifecycle.kube import Kube, KubeError
from tests.lifecycle.test_controller import FakeKube, phases, submit, until
from tests.lifecycle.test_controller import started as started_service

pytestmark = pytest.mark.infra

INVALID = ('{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Invalid",'
           '"message":"Pod \\"x\\" is invalid: metadata.labels: Invalid value: \\"bad!\\"",'
           '"code":422}')


class RefusingKube(FakeKube):
    """Answers pod creations from a script of statuses (then creates)."""

    def __init__(self, answers: list[int]):
        super().__init__()
        self.answers = answers
        self.attempts: list[float] = []

    async def create_pod(self, manifest):
        self.attempts.append(time.monotonic())
        if self.answers:
            status = self.answers.pop(0)
            raise KubeError(status, INVALID if status == 422 else '{"message":"try later"}')
        return await super().create_pod(manifest)


async def started(database_url, kube, **settings):
    """The service with quick retries (a pause of 0.1 s doubling up to 0.4 s)."""
    return await started_service(database_url, kube, retry_base_seconds=0.1,
                                 retry_cap_seconds=0.4, **settings)


def test_which_refusals_are_for_good():
    assert [s for s in (400, 403, 404, 408, 409, 413, 422, 429, 500, 503)
            if refusal_is_permanent(s)] == [400, 413, 422]
    assert [backoff_delay(n, 0.5, 60, 1.0) for n in (1, 2, 3, 8, 9, 50)] == [
        0.5, 1.0, 2.0, 60.0, 60.0, 60.0]
    assert backoff_delay(3, 0.5, 60, 0.5) == 1.0  # spread scales, never below half


async def test_a_permanent_refusal_fails_the_workload_once_with_the_servers_reason(
        database_url, tag):
    kube = RefusingKube([422] * 100)
    runtime, service = await started(database_url, kube)
    try:
        wid = f"{tag}-refused"
        await submit(service, wid)

        async def failed():
            return (await phases(runtime.pool, wid))[-1:] == ["Failed"]
        await until(failed)
        await asyncio.sleep(1.0)  # long enough for several retries, were there any
        assert len(kube.attempts) == 1
        assert await phases(runtime.pool, wid) == ["Creating", "Failed"]
        async with runtime.pool.acquire() as conn:
            row = await repo.get(conn, wid)
        assert row.unschedulable[0] == "CreateRejected"
        assert 'Invalid value: "bad!"' in row.unschedulable[1]
    finally:
        await runtime.stop()


async def test_a_passing_failure_is_retried_with_a_growing_pause_then_runs(database_url, tag):
    kube = RefusingKube([500, 503, 429, 500, 500])
    runtime, service = await started(database_url, kube)
    try:
        wid = f"{tag}-flaky"
        await submit(service, wid)

        async def created():
            return any(c[0] == "create" for c in kube.calls)
        await until(created, timeout=10)
        gaps = [b - a for a, b in zip(kube.attempts, kube.attempts[1:], strict=False)]
        assert len(kube.attempts) == 6
        # 0.1, 0.2, 0.4, 0.4, 0.4 seconds, each scaled by 0.5..1: never a hot loop
        assert all(gap >= 0.045 for gap in gaps), gaps
        assert gaps[-1] >= 0.19 and sum(gaps) >= 0.7, gaps
        assert await phases(runtime.pool, wid) == ["Creating"]  # not failed
    finally:
        await runtime.stop()


@pytest.fixture(scope="module")
def kubesim(tmp_path_factory):
    with KubeSimThread(DEFAULT_PROFILE, seed=3) as sim:
        yield sim.write_kubeconfig(tmp_path_factory.mktemp("kubesim") / "kubeconfig")


async def test_kubernetes_refusing_a_label_value_fails_the_workload(database_url, tag,
                                                                   kubesim):
    kube = Kube(str(kubesim))
    runtime, service = await started(database_url, kube)
    try:
        wid = f"{tag}-label"
        await submit(service, wid, labels=[{"name": "team", "value": "a!b"}])

        async def failed():
            return (await phases(runtime.pool, wid))[-1:] == ["Failed"]
        await until(failed, timeout=10)
        async with runtime.pool.acquire() as conn:
            row = await repo.get(conn, wid)
        assert row.unschedulable[0] == "CreateRejected"
        assert "metadata.labels" in row.unschedulable[1] and "422" in row.unschedulable[1]
        assert "'kind'" not in row.unschedulable[1]  # the server's message, not its Status
    finally:
        await runtime.stop()
        kube.close()


def letter(consumer: str, payload: str) -> DeadLetter:
    return DeadLetter(consumer=consumer, stream="S", subject="s", stream_sequence=1,
                      deliveries=8, error="ValidationError: spec.gpus", payload=payload,
                      failed_at=utcnow())


def test_which_dead_letters_leave_a_workload_stalled():
    about = json.dumps({"workloadId": "w-1"})
    assert stalled_workload(letter("scheduler-workloads", about)) == (
        "w-1", "the scheduler service could not handle its submission message (8 "
        "deliveries): ValidationError: spec.gpus")
    assert stalled_workload(letter("lifecycle-decisions", about))[0] == "w-1"
    assert stalled_workload(letter("metrics-phases", about)) is None  # only counts
    assert stalled_workload(letter("scheduler-workloads", "not json")) is None
    assert stalled_workload(letter("scheduler-workloads", "[1]")) is None


async def test_a_dead_lettered_submission_fails_the_workload_saying_why(database_url, tag):
    runtime, service = await started(database_url, FakeKube())
    try:
        wid = f"{tag}-dead"
        await submit(service, wid)
        await service.dead_letter(letter("scheduler-workloads", json.dumps({"workloadId": wid})))

        async def failed():
            return (await phases(runtime.pool, wid))[-1:] == ["Failed"]
        await until(failed)
        async with runtime.pool.acquire() as conn:
            payload = await conn.fetchval(
                "SELECT payload FROM outbox WHERE subject LIKE $1 ORDER BY id DESC LIMIT 1",
                f"fairway.phase.team-a.{wid}.%")
        changed = json.loads(bytes(payload))
        assert changed["reason"] == "Undeliverable"
        assert "cannot go on: the scheduler service could not handle" in changed["message"]
        await service.dead_letter(letter("scheduler-workloads", json.dumps({"workloadId": wid})))
        await asyncio.sleep(0.3)
        assert (await phases(runtime.pool, wid)).count("Failed") == 1
    finally:
        await runtime.stop()
