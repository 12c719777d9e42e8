"""A crash of any process loses no workload and repeats nothing. The embedded stack under its
supervisor (the same `Stack.supervise` that `fairway up` runs twice a second), 200 trainings
in flight, and `kill -9` of each service, then NATS, PostgreSQL and kubesim, in turn: every workload
reaches Completed, each with exactly one pod (none created twice), its phase story legal and
without a repeated or missing transition, and the supervisor still running at the end."""

import asyncio
import os
import signal
import time

import httpx
import pytest
from kubernetes import client, config

from fairway_devstack.stack import SERVICES
from fairway_devstack.testing import running_stack, supervising
from tests.e2e.test_robustness import all_phase_events, assert_legal_stories

pytestmark = pytest.mark.e2e

COUNT = 200


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("crash")
    try:
        # PostgreSQL durable, as `make up` runs it: the tests' fast storage turns synchronous
        # commit off, and a kill -9 then loses the last commits, which no real setup would
        with (running_stack(state, fast_storage=False, kubesim_args=("--admin",)) as stack,
              supervising(stack, interval=0.5) as supervisor):
            yield stack, supervisor
    finally:
        print((state / "logs" / "supervisor.log").read_text(errors="replace")
              if (state / "logs" / "supervisor.log").exists() else "no supervisor log")


def wait_healthy(api: httpx.Client, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if api.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the platform did not become healthy again")


def pid_of(stack, name: str) -> int:
    return stack.info()["processes"][name]["pid"]


def pod_uids(kube: client.CoreV1Api) -> dict[str, str]:
    """Every pod's uid by name, once kubesim answers (it may just have been restarted)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            pods = kube.list_pod_for_all_namespaces().items
            return {p.metadata.name: p.metadata.uid for p in pods}
        except Exception:
            assert time.monotonic() < deadline, "kubesim does not answer"
            time.sleep(0.3)


async def test_kill_9_of_every_process_in_turn_loses_and_repeats_nothing(crash_stack):
    stack, supervisor = crash_stack
    token = stack.admin_token_file.read_text().strip()
    api = httpx.Client(base_url=stack.api_url, timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    projects = api.get("/api/v1/org-unit/projects").json()["projects"]
    project_id = next(p["id"] for p in projects if p["name"] == "default")
    ids = []
    for i in range(COUNT):
        r = api.post("/api/v1/workloads/trainings", json={
            "name": f"crash-{i}", "projectId": project_id, "spec": {
                "image": "busybox", "annotations": [
                    {"name": "sim.fairway.io/run-seconds", "value": "4"}]}})
        assert r.status_code == 202, r.text
        ids.append(r.json()["workloadId"])

    victims = [s for s in SERVICES if s != "submission"] + [
        "submission", "nats", "postgres", "kubesim"]
    kube = client.CoreV1Api(config.new_client_from_config(config_file=stack.kubeconfig))
    for victim in victims:
        if victim == "kubesim":
            await asyncio.sleep(3)  # a periodic snapshot (every 2 s) has every pod
            before = pod_uids(kube)
        old = pid_of(stack, victim)
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 90
        while pid_of(stack, victim) in (None, old):
            assert supervisor.failure is None, supervisor.failure
            assert time.monotonic() < deadline, f"{victim} not restarted: {supervisor.events}"
            await asyncio.sleep(0.2)
        wait_healthy(api)
        await asyncio.sleep(2)  # work goes on between the crashes
    after = pod_uids(kube)
    assert before, "kubesim had pods when it was killed"
    kept = {name for name, uid in before.items() if after.get(name) == uid}
    assert len(kept) >= len(before) - 5, (  # a few may have completed and gone since
        f"kubesim lost pods in its restart: {sorted(set(before) - kept)[:10]}")

    deadline = time.monotonic() + 300
    remaining = set(ids)
    while remaining and time.monotonic() < deadline:
        try:
            page = api.get("/api/v1/workloads", params={
                "filterBy": "name=@crash-", "limit": 500}).json()["workloads"]
            remaining = {w["workloadId"] for w in page
                         if w["phase"] not in ("Completed", "Failed")}
        except httpx.HTTPError:
            pass
        await asyncio.sleep(1)
    assert not remaining, f"{len(remaining)} workloads never finished"

    assert_legal_stories(await all_phase_events(stack.nats_url, "default"), ids)

    pods = kube.list_namespaced_pod("fairway-default").items
    per_workload: dict[str, list[str]] = {}
    for pod in pods:
        wid = (pod.metadata.labels or {}).get("fairway.io/workload-id")
        if wid in ids:
            per_workload.setdefault(wid, []).append(pod.metadata.name)
    assert len(per_workload) == COUNT, f"pods of {len(per_workload)} workloads found"
    twice = {wid: names for wid, names in per_workload.items() if len(names) != 1}
    assert not twice, f"pods created more than once: {list(twice.items())[:5]}"
    kubesim = httpx.Client(base_url=stack.info()["processes"]["kubesim"]["url"])
    creations = kubesim.get("/admin/creations/pods").json()  # a pod deleted and made again too
    assert not {name: n for name, n in creations.items() if n > 1}, creations
    assert supervisor.running and supervisor.failure is None
    restarted = {event.process for event in supervisor.events if "restarted" in event.text}
    assert restarted == set(victims), supervisor.events
