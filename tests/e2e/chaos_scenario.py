"""`make chaos`: the long version of the replicas tests, not part of `make test` (its file
name is not test_*.py; the make target names it). Bounded: every wait has a deadline and the
whole run stops by itself (`timeout` in the Makefile on top).

The embedded stack with three NATS servers (one JetStream cluster, streams in three copies),
two APIs, two policy services, two schedulers, three lifecycle replicas (shards) and two
metrics replicas. 300 workloads of mixed types (trainings that complete, trainings that fail
after their retries, PyTorch jobs with a master and a worker, trainings of a whole GPU and of
half of one) submitted through both APIs in turn over six projects, while `kill -9` takes one
NATS server, the lifecycle replica holding the most shards, one API process and the leading
scheduler, at different moments, and PostgreSQL is restarted once. Afterwards: every workload
reached its expected final phase; every workload's phase story is a legal path with no
transition repeated; no pod was bound twice (kubesim's Scheduled events) and no device booked
twice (no admission refusal in kubesim's events); both metrics replicas count, per project and
phase, what the database holds. Prints the time each lifecycle takeover took.
"""

import asyncio
import os
import signal
import time
import uuid
from collections import Counter

import httpx
import nats
import pytest
from kubernetes import client, config

from fairway_devstack.testing import running_stack, supervising
from tests.e2e.test_crash import pid_of, wait_healthy
from tests.e2e.test_metrics_scenario import matching
from tests.e2e.test_replicas import leading_scheduler
from tests.e2e.test_robustness import all_phase_events, assert_legal_stories
from tests.e2e.test_shards import (
    assert_no_device_double_booked,
    holders,
    scrape,
    spread,
    wait_spread,
)

pytestmark = pytest.mark.e2e

COUNT = int(os.environ.get("FAIRWAY_CHAOS_WORKLOADS", "300"))
PROJECTS = 6
REPLICAS = {"submission": 2, "policy": 2, "scheduler": 2, "lifecycle": 3, "metrics": 2}
EXPECTED = ("Completed", "Failed", "Completed", "Completed", "Completed")  # by kind, below


def body(i: int, project_id: str) -> tuple[str, dict]:
    """The i-th workload: its kind (the API's plural) and request."""
    run = {"name": "sim.fairway.io/run-seconds", "value": "2"}
    match i % len(EXPECTED):
        case 0:
            return "trainings", {"name": f"chaos-{i}", "projectId": project_id, "spec": {
                "image": "busybox", "annotations": [run]}}
        case 1:
            return "trainings", {"name": f"chaos-{i}", "projectId": project_id, "spec": {
                "image": "busybox", "backoffLimit": 1, "annotations": [
                    run, {"name": "sim.fairway.io/exit-code", "value": "3"}]}}
        case 2:
            return "distributed", {"name": f"chaos-{i}", "projectId": project_id, "spec": {
                "image": "busybox", "distributedFramework": "PyTorch", "numWorkers": 1,
                "annotations": [run]}}
        case 3:  # a whole GPU: a device booked twice would show (see the end)
            return "trainings", {"name": f"chaos-{i}", "projectId": project_id, "spec": {
                "image": "busybox", "compute": {"gpuDevicesRequest": 1}, "annotations": [run]}}
        case _:  # half a GPU: reservation pods, made and released by the shards' holders
            return "trainings", {"name": f"chaos-{i}", "projectId": project_id, "spec": {
                "image": "busybox", "compute": {"gpuPortionRequest": 0.5},
                "annotations": [run]}}


def explain(api: httpx.Client, workload_ids: list[str]) -> None:
    """What the stack says of workloads that did not end as expected: the view, the phase
    events, the pods and their Kubernetes events (printed, for the run's log)."""
    for wid in workload_ids:
        print(f"\n--- {wid}")
        for path in ("", "/events", "/pods", "/kubernetes-events"):
            try:
                r = api.get(f"/api/v1/workloads/{wid}{path}")
                print(f"GET …{path}: {r.status_code} {r.text[:3000]}")
            except httpx.HTTPError as exc:
                print(f"GET …{path}: {exc!r}")


@pytest.mark.timeout(1500)
async def test_chaos(tmp_path):
    with (running_stack(tmp_path / "chaos", nats_replicas=3, replicas=REPLICAS,
                        fast_storage=False) as stack,
          supervising(stack, interval=0.5) as supervisor):
        await chaos(stack, supervisor)


async def chaos(stack, supervisor) -> None:
    token = stack.admin_token_file.read_text().strip()
    processes = stack.info()["processes"]
    apis = [httpx.Client(base_url=processes[name]["url"], timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
            for name in ("submission", "submission-2")]
    run = uuid.uuid4().hex[:4]
    projects = {}
    for i in range(PROJECTS):
        r = apis[0].post("/api/v1/org-unit/projects", json={"name": f"chaos-{run}-{i}"})
        assert r.status_code == 201, r.text
        projects[r.json()["name"]] = r.json()["id"]
    names = list(projects)
    ids: list[str] = []
    expected: dict[str, str] = {}
    project_of: dict[str, str] = {}

    def submit(count: int, through: list[httpx.Client]) -> None:
        for _ in range(count):
            i = len(ids)
            project = names[i % len(names)]
            kind, request = body(i, projects[project])
            r = None
            for _attempt in range(60):  # an API restarting, or one whose NATS server or
                try:                    # database is away (503), is asked again
                    r = through[i % len(through)].post(f"/api/v1/workloads/{kind}",
                                                       json=request)
                    if r.status_code != 503:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            assert r is not None and r.status_code == 202, r and r.text
            wid = r.json()["workloadId"]
            ids.append(wid)
            expected[wid] = EXPECTED[i % len(EXPECTED)]
            project_of[wid] = project

    await wait_spread(stack, timeout=90)
    submit(COUNT // 6, apis)
    takeovers: list[float] = []
    for victim in ("nats-2", "lifecycle", "submission-2", "scheduler", "postgres"):
        if victim == "scheduler":
            victim = leading_scheduler(stack)
        orphaned: set[int] = set()
        if victim == "lifecycle":
            by = spread(stack)
            victim = max(("lifecycle", "lifecycle-2", "lifecycle-3"),
                         key=lambda n: len(by.get(n, ())))
            orphaned = by.get(victim, set())
        old = pid_of(stack, victim)
        os.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()
        print(f"\nkill -9 {victim} (pid {old}) with {len(ids)} workloads submitted")
        submit(COUNT // 6, apis[:1] if victim == "submission-2" else apis)
        if orphaned:
            while True:
                now = holders(stack)
                if all(now[s] and f"-{old}-" not in now[s] for s in orphaned):
                    takeovers.append(time.monotonic() - killed_at)
                    break
                assert time.monotonic() - killed_at < 60, f"{orphaned} not taken over: {now}"
                await asyncio.sleep(0.2)
        deadline = time.monotonic() + 120
        while pid_of(stack, victim) in (None, old):
            assert supervisor.failure is None, supervisor.failure
            assert time.monotonic() < deadline, f"{victim} not restarted: {supervisor.events}"
            await asyncio.sleep(0.2)
        wait_healthy(apis[0])
        await asyncio.sleep(3)
    submit(COUNT - len(ids), apis)
    print(f"lifecycle takeovers: {', '.join(f'{t:.1f} s' for t in takeovers)}")

    deadline = time.monotonic() + 600
    final: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            r = apis[0].get("/api/v1/workloads", params={"filterBy": "name=@chaos-",
                                                          "limit": 500})
            if r.status_code == 200:
                final = {w["workloadId"]: w["phase"] for w in r.json()["workloads"]}
        except httpx.HTTPError:
            pass
        if all(final.get(w) in ("Completed", "Failed") for w in ids):
            break
        await asyncio.sleep(2)
    wrong = {w: (final.get(w), expected[w]) for w in ids if final.get(w) != expected[w]}
    if wrong:
        explain(apis[0], list(wrong)[:5])
    assert not wrong, f"{len(wrong)} workloads did not end as expected: {list(wrong.items())[:10]}"

    refused = 0
    for project in names:
        for attempt in range(5):  # the cluster may still be catching a server up
            try:
                stories = await all_phase_events(stack.nats_url, project)
                break
            except nats.errors.TimeoutError:
                assert attempt < 4, "the phase stream could not be read"
                await asyncio.sleep(2)
        refused += sum(1 for wid in ids if any(e["reason"] == "NodeRejected"
                                               for e in stories.get(wid, ())))
        for final in ("Completed", "Failed"):
            assert_legal_stories(stories, [w for w in ids if project_of[w] == project
                                           and expected[w] == final], final)

    kube = client.CoreV1Api(config.new_client_from_config(config_file=stack.kubeconfig))
    scheduled: Counter[str] = Counter()
    for project in names:
        for event in kube.list_namespaced_event(f"fairway-{project}").items:
            if event.reason == "Scheduled":  # kubesim's record of each bind, per pod
                # object: a pod its node refused is made again under the same name
                scheduled[f"{event.involved_object.name} {event.involved_object.uid}"] += 1
    assert scheduled and max(scheduled.values()) == 1, [
        p for p, n in scheduled.items() if n > 1]
    assert_no_device_double_booked(kube)

    want = Counter((project_of[w], expected[w]) for w in ids)
    for replica in ("metrics", "metrics-2"):
        url = stack.info()["processes"][replica]["url"]
        deadline = time.monotonic() + 60
        while True:
            samples = await asyncio.to_thread(scrape, url)
            got = Counter({(p, phase): int(sum(matching(samples, "fairway_workloads", project=p,
                                                        phase=phase).values()))
                           for p, phase in want})
            if got == want:
                break
            assert time.monotonic() < deadline, (replica, got, want)
            await asyncio.sleep(1)
    assert supervisor.failure is None
    print(f"CHAOS OK: {len(ids)} workloads; lifecycle takeovers "
          f"{', '.join(f'{t:.1f} s' for t in takeovers)}; {refused} workloads had a pod "
          "refused by its node at binding (NodeRejected) and made again")
