"""A NATS server can go away without losing anything. The embedded stack with three NATS
servers in one JetStream cluster (`FAIRWAY_NATS_REPLICAS=3`, every stream three copies) under
its supervisor, 120 trainings in flight, and `kill -9` of the server leading the workload
stream, then of the one leading the phase stream: every workload reaches Completed with exactly
one pod, its phase story legal and without a repeated or missing transition."""

import asyncio
import os
import signal
import time

import httpx
import nats
import pytest
from kubernetes import client, config

from fairway_bus.settings import nats_servers
from fairway_devstack.testing import running_stack, supervising
from tests.e2e.test_crash import pid_of, wait_healthy
from tests.e2e.test_robustness import all_phase_events, assert_legal_stories

pytestmark = pytest.mark.e2e

COUNT = 120
REPLICAS = 3


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("natscluster")
    try:
        with (running_stack(state, nats_replicas=REPLICAS) as stack,
              supervising(stack, interval=0.5) as supervisor):
            yield stack, supervisor
    finally:
        log = state / "logs" / "supervisor.log"
        print(log.read_text(errors="replace") if log.exists() else "no supervisor log")


async def stream_cluster(nats_url: str, stream: str):
    nc = await nats.connect(nats_servers(nats_url))
    try:
        return (await nc.jetstream().stream_info(stream)).cluster
    finally:
        await nc.close()


async def leader_of(stack, stream: str) -> str:
    """The stack's process name (nats-N) of the server leading `stream` right now."""
    deadline = time.monotonic() + 30
    while True:
        try:
            info = await stream_cluster(stack.nats_url, stream)
        except (nats.errors.Error, TimeoutError):
            # Just after a server was killed and restarted, the cluster elects its JetStream
            # meta leader again, and the JetStream API answers "unavailable" meanwhile.
            info = None
        if info is not None and info.leader:
            return "nats-" + info.leader.rsplit("-", 1)[1]  # fairway-dev-N
        assert time.monotonic() < deadline, f"{stream} has no leader"
        await asyncio.sleep(0.5)


async def test_every_stream_keeps_three_copies(cluster_stack):
    stack, _ = cluster_stack
    names = {name for name in stack.info()["processes"] if name.startswith("nats")}
    assert names == {"nats-1", "nats-2", "nats-3"}
    assert len(nats_servers(stack.nats_url)) == REPLICAS
    for stream in ("FAIRWAY_WORKLOADS", "FAIRWAY_PHASES", "FAIRWAY_DECISIONS"):
        info = await stream_cluster(stack.nats_url, stream)
        assert info is not None and info.leader, stream
        assert len(info.replicas or []) == REPLICAS - 1, (stream, info)


async def test_kill_9_of_stream_leaders_loses_and_repeats_nothing(cluster_stack):
    stack, supervisor = cluster_stack
    token = stack.admin_token_file.read_text().strip()
    api = httpx.Client(base_url=stack.api_url, timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    projects = api.get("/api/v1/org-unit/projects").json()["projects"]
    project_id = next(p["id"] for p in projects if p["name"] == "default")

    def submit(i: int) -> str:
        r = api.post("/api/v1/workloads/trainings", json={
            "name": f"nc-{i}", "projectId": project_id, "spec": {
                "image": "busybox", "annotations": [
                    {"name": "sim.fairway.io/run-seconds", "value": "3"}]}})
        assert r.status_code == 202, r.text
        return r.json()["workloadId"]

    ids = [submit(i) for i in range(COUNT // 2)]
    killed = []
    for stream in ("FAIRWAY_WORKLOADS", "FAIRWAY_PHASES"):
        victim = await leader_of(stack, stream)
        old = pid_of(stack, victim)
        os.kill(old, signal.SIGKILL)
        killed.append(victim)
        # While it is down the cluster elects another leader and the API goes on accepting.
        ids += [submit(len(ids) + i) for i in range(COUNT // 4)]
        deadline = time.monotonic() + 90
        while pid_of(stack, victim) in (None, old):
            assert supervisor.failure is None, supervisor.failure
            assert time.monotonic() < deadline, f"{victim} not restarted: {supervisor.events}"
            await asyncio.sleep(0.2)
        wait_healthy(api)
        await asyncio.sleep(2)

    deadline = time.monotonic() + 300
    remaining = set(ids)
    while remaining and time.monotonic() < deadline:
        try:
            page = api.get("/api/v1/workloads", params={
                "filterBy": "name=@nc-", "limit": 500}).json()["workloads"]
            remaining = {w["workloadId"] for w in page
                         if w["phase"] not in ("Completed", "Failed")} | (
                set(ids) - {w["workloadId"] for w in page})
        except httpx.HTTPError:
            pass
        await asyncio.sleep(1)
    assert not remaining, f"{len(remaining)} workloads never finished"

    assert_legal_stories(await all_phase_events(stack.nats_url, "default"), ids)

    kube = client.CoreV1Api(config.new_client_from_config(config_file=stack.kubeconfig))
    per_workload: dict[str, int] = {}
    for pod in kube.list_namespaced_pod("fairway-default").items:
        wid = (pod.metadata.labels or {}).get("fairway.io/workload-id")
        if wid in ids:
            per_workload[wid] = per_workload.get(wid, 0) + 1
    assert len(per_workload) == len(ids), f"pods of {len(per_workload)} workloads found"
    assert not {wid for wid, n in per_workload.items() if n != 1}, "a pod made twice"
    assert supervisor.running and supervisor.failure is None
    restarted = {event.process for event in supervisor.events if "restarted" in event.text}
    assert restarted == set(killed), supervisor.events
    for stream in ("FAIRWAY_WORKLOADS", "FAIRWAY_PHASES"):  # back to three current copies
        info = await stream_cluster(stack.nats_url, stream)
        assert info is not None and all(p.current for p in info.replicas or []), info
