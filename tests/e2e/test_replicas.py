"""Replicas survive the loss of any one of them. The embedded stack with three NATS servers (one
JetStream cluster), two processes of the API, two of policy and two schedulers (one leading,
one standing by), under its supervisor; trainings submitted through both APIs in turn while
`kill -9` takes one API process, the leading scheduler and one NATS server, and PostgreSQL is
restarted. Every workload reaches Completed with exactly one pod, its phase story legal, and
both APIs tell the same."""

import asyncio
import json
import os
import signal
import threading
import time

import httpx
import pytest
from kubernetes import client, config

from fairway_devstack.testing import running_stack, supervising
from tests.e2e.test_crash import pid_of, wait_healthy
from tests.e2e.test_robustness import all_phase_events, assert_legal_stories

pytestmark = pytest.mark.e2e

COUNT = 120
REPLICAS = {"submission": 2, "policy": 2, "scheduler": 2}


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    state = tmp_path_factory.mktemp("replicas")
    try:
        with (running_stack(state, nats_replicas=3, replicas=REPLICAS,
                            fast_storage=False) as stack,
              supervising(stack, interval=0.5) as supervisor):
            yield stack, supervisor
    finally:
        log = state / "logs" / "supervisor.log"
        print(log.read_text(errors="replace") if log.exists() else "no supervisor log")


def leading_scheduler(stack) -> str:
    """The process name of the scheduler that holds the Lease (its identity names its pid)."""
    leases = client.CoordinationV1Api(config.new_client_from_config(config_file=stack.kubeconfig))
    deadline = time.monotonic() + 30
    while True:
        try:
            lease = leases.read_namespaced_lease("fairway-scheduler", "default")
            holder = lease.spec.holder_identity
        except client.ApiException:
            holder = None
        for name in ("scheduler", "scheduler-2"):
            if holder and f"-{pid_of(stack, name)}-" in holder:
                return name
        assert time.monotonic() < deadline, f"no scheduler holds the Lease ({holder})"
        time.sleep(0.5)


def test_the_stack_runs_every_replica(replicated):
    stack, _ = replicated
    processes = stack.info()["processes"]
    assert {"submission", "submission-2", "policy", "policy-2", "scheduler", "scheduler-2",
            "lifecycle", "metrics", "nats-1", "nats-2", "nats-3"} <= set(processes)
    assert processes["submission-2"]["port"] != processes["submission"]["port"]
    leading_scheduler(stack)  # one of the two leads


def test_console_browsers_on_every_replica_hear_every_phase_change(replicated):
    """The replicas share the phase consumer, each applying part of the changes; a browser
    connected to the second API still hears of every change to workloads submitted through the
    first."""
    stack, _ = replicated
    token = stack.admin_token_file.read_text().strip()
    processes = stack.info()["processes"]
    first = httpx.Client(base_url=processes["submission"]["url"], timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    second = processes["submission-2"]["url"]
    projects = first.get("/api/v1/org-unit/projects").json()["projects"]
    project_id = next(p["id"] for p in projects if p["name"] == "default")
    heard: dict[str, set[str]] = {}
    listening = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{second}/workloads/live", timeout=90,
                          cookies={"fairway_console": token}) as stream:
            listening.set()
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "phase":
                    data = json.loads(line.removeprefix("data: "))
                    heard.setdefault(data["id"], set()).add(data["phase"])
                    if ids and all("Completed" in heard.get(i, ()) for i in ids):
                        return

    ids: list[str] = []
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert listening.wait(30)
    for i in range(6):
        r = first.post("/api/v1/workloads/trainings", json={
            "name": f"live-{i}", "projectId": project_id, "spec": {
                "image": "busybox", "annotations": [
                    {"name": "sim.fairway.io/run-seconds", "value": "1"}]}})
        assert r.status_code == 202, r.text
        ids.append(r.json()["workloadId"])
    listener.join(90)
    missing = {i: sorted(heard.get(i, ())) for i in ids if "Completed" not in heard.get(i, ())}
    assert not missing, f"the second API's browser did not hear: {missing}"
    assert all({"Running", "Completed"} <= heard[i] for i in ids), heard


async def test_losing_one_of_each_replica_loses_and_repeats_nothing(replicated):
    stack, supervisor = replicated
    token = stack.admin_token_file.read_text().strip()
    apis = [httpx.Client(base_url=stack.info()["processes"][name]["url"], timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
            for name in ("submission", "submission-2")]
    projects = apis[0].get("/api/v1/org-unit/projects").json()["projects"]
    project_id = next(p["id"] for p in projects if p["name"] == "default")
    ids: list[str] = []

    def submit(count: int, through: list[httpx.Client]) -> None:
        for _ in range(count):
            i = len(ids)
            api = through[i % len(through)]
            body = {"name": f"rep-{i}", "projectId": project_id, "spec": {
                "image": "busybox", "annotations": [
                    {"name": "sim.fairway.io/run-seconds", "value": "3"}]}}
            r = None
            for _attempt in range(40):  # an API process starting again, or one that just
                try:                    # lost its NATS server (503), is asked again
                    r = api.post("/api/v1/workloads/trainings", json=body)
                    if r.status_code != 503:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            assert r is not None and r.status_code == 202, r and r.text
            ids.append(r.json()["workloadId"])

    submit(COUNT // 4, apis)
    victims = ["submission-2", leading_scheduler(stack), "nats-2", "postgres"]
    for victim in victims:
        old = pid_of(stack, victim)
        os.kill(old, signal.SIGKILL)
        # The other API goes on accepting while this one is away.
        submit(COUNT // 8, apis[:1] if victim == "submission-2" else apis)
        deadline = time.monotonic() + 90
        while pid_of(stack, victim) in (None, old):
            assert supervisor.failure is None, supervisor.failure
            assert time.monotonic() < deadline, f"{victim} not restarted: {supervisor.events}"
            await asyncio.sleep(0.2)
        wait_healthy(apis[0])
        await asyncio.sleep(2)
    submit(COUNT - len(ids), apis)

    deadline = time.monotonic() + 300
    remaining = set(ids)
    while remaining and time.monotonic() < deadline:
        try:
            page = apis[0].get("/api/v1/workloads", params={
                "filterBy": "name=@rep-", "limit": 500}).json()["workloads"]
            remaining = set(ids) - {w["workloadId"] for w in page if w["phase"] == "Completed"}
        except httpx.HTTPError:
            pass
        await asyncio.sleep(1)
    assert not remaining, f"{len(remaining)} workloads never completed"
    views = [{w["workloadId"]: w["phase"] for w in api.get("/api/v1/workloads", params={
        "filterBy": "name=@rep-", "limit": 500}).json()["workloads"]} for api in apis]
    assert views[0] == views[1], "the two APIs tell different phases"

    assert_legal_stories(await all_phase_events(stack.nats_url, "default"), ids)
    kube = client.CoreV1Api(config.new_client_from_config(config_file=stack.kubeconfig))
    per_workload: dict[str, int] = {}
    for pod in kube.list_namespaced_pod("fairway-default").items:
        wid = (pod.metadata.labels or {}).get("fairway.io/workload-id")
        if wid in ids:
            per_workload[wid] = per_workload.get(wid, 0) + 1
    assert len(per_workload) == len(ids) and set(per_workload.values()) == {1}
    assert supervisor.running and supervisor.failure is None
    restarted = {event.process for event in supervisor.events if "restarted" in event.text}
    assert restarted == set(victims), supervisor.events
