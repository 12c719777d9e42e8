"""A submission too large for the message bus is refused with a status that says so, and the
policy service stays on the bus: before, a ~1 MB submission closed the policy service's NATS
connection for good and every later submission answered 503."""

import pytest

from tests.submission.conftest import real_policy

pytestmark = pytest.mark.infra


async def test_a_submission_too_large_for_the_bus_is_refused_and_the_next_one_runs(
        harness, default_project, nats_url, database_url):
    pid = default_project["id"]
    big = [{"name": f"VAR_{i}", "value": "x" * 30_000} for i in range(36)]  # ~1.08 MB
    async with real_policy(harness, nats_url, database_url):
        r = await harness.admin.post("/api/v1/workloads/trainings", json={
            "name": "too-big", "projectId": pid,
            "spec": {"image": "busybox", "environmentVariables": big}})
        assert r.status_code in (413, 422), r.text
        assert r.json()["code"] == r.status_code and r.json()["message"]
        for attempt in range(3):  # the policy service still answers, every time
            r = await harness.admin.post("/api/v1/workloads/trainings", json={
                "name": f"after-{attempt}", "projectId": pid, "spec": {"image": "busybox"}})
            assert r.status_code == 202, r.text
