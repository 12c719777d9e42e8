"""Lifecycle in three replicas sharing the workloads by shards (Kubernetes Leases), and metrics
in two. The shards spread over the lifecycle replicas; `kill -9` of one of them mid-flight
hands its shards to the others within one lease period (measured), and still every workload
completes with exactly one pod bound once, its phase story legal with no transition repeated,
and both metrics replicas count what the database holds."""

import asyncio
import os
import signal
import time
import uuid
from collections import Counter

import httpx
import pytest
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from fairway_devstack.testing import running_stack, supervising
from tests.e2e.test_crash import pid_of
from tests.e2e.test_metrics_scenario import matching
from tests.e2e.test_robustness import all_phase_events, assert_legal_stories

pytestmark = pytest.mark.e2e

SHARDS = 16
LEASE_SECONDS = 10.0  # the default FAIRWAY_LIFECYCLE_SHARD_LEASE_SECONDS
COUNT = 60
PROJECTS = 6
LIFECYCLES = ("lifecycle", "lifecycle-2", "lifecycle-3")
# No GPU, a whole GPU, half of one: binds, devices and the reservation pods that hold shared
# devices all go through the shards.
COMPUTE = ({}, {"gpuDevicesRequest": 1}, {"gpuPortionRequest": 0.5})


def assert_no_device_double_booked(kube) -> None:
    """kubesim's kubelet refuses a pod whose GPUs (or CPU, memory) are taken, with a Warning
    event as a real kubelet does: none in any namespace means no device was booked twice."""
    refused = [(e.involved_object.namespace, e.involved_object.name, e.message)
               for e in kube.list_event_for_all_namespaces().items
               if e.type == "Warning" and (e.reason == "UnexpectedAdmissionError"
                                           or e.reason.startswith("OutOf"))]
    assert not refused, f"devices double-booked: {refused[:5]}"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    state = tmp_path_factory.mktemp("shards")
    try:
        with (running_stack(state, replicas={"lifecycle": 3, "metrics": 2}) as stack,
              supervising(stack, interval=0.5) as supervisor):
            yield stack, supervisor
    finally:
        log = state / "logs" / "supervisor.log"
        print(log.read_text(errors="replace") if log.exists() else "no supervisor log")


def scrape(url: str) -> dict:
    """A metrics replica's /metrics: {(name, labels): value}."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def holders(stack) -> dict[int, str | None]:
    """Each shard's Lease holder (None: free or not made yet)."""
    leases = client.CoordinationV1Api(config.new_client_from_config(config_file=stack.kubeconfig))
    found: dict[int, str | None] = dict.fromkeys(range(SHARDS))
    for lease in leases.list_namespaced_lease("default").items:
        name = lease.metadata.name
        if name.startswith("fairway-lifecycle-shard-"):
            found[int(name.rsplit("-", 1)[1])] = lease.spec.holder_identity
    return found


def process_of(stack, holder: str | None) -> str | None:
    for name in LIFECYCLES:
        pid = pid_of(stack, name)
        if holder and pid and f"-{pid}-" in holder:
            return name
    return None


def spread(stack) -> dict[str, set[int]]:
    """Which lifecycle process holds which shards."""
    by: dict[str, set[int]] = {}
    for shard, holder in holders(stack).items():
        by.setdefault(process_of(stack, holder) or "nobody", set()).add(shard)
    return by


async def wait_spread(stack, timeout: float = 60.0) -> dict[str, set[int]]:
    deadline = time.monotonic() + timeout
    while True:
        by = spread(stack)
        if "nobody" not in by and len(by) == 3 and all(len(s) <= 6 for s in by.values()):
            return by
        assert time.monotonic() < deadline, f"the shards did not spread: {by}"
        await asyncio.sleep(0.5)


def test_the_shards_spread_over_the_lifecycle_replicas(sharded):
    stack, _ = sharded
    processes = stack.info()["processes"]
    assert {*LIFECYCLES, "metrics", "metrics-2"} <= set(processes)
    by = asyncio.run(wait_spread(stack))
    assert sum(len(s) for s in by.values()) == SHARDS and min(map(len, by.values())) >= 4, by


async def test_killing_a_lifecycle_replica_hands_its_shards_on_and_loses_nothing(sharded):
    stack, supervisor = sharded
    token = stack.admin_token_file.read_text().strip()
    api = httpx.Client(base_url=stack.info()["processes"]["submission"]["url"], timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    run = uuid.uuid4().hex[:4]
    projects = {}
    for i in range(PROJECTS):
        r = api.post("/api/v1/org-unit/projects", json={"name": f"shard-{run}-{i}"})
        assert r.status_code == 201, r.text
        projects[r.json()["name"]] = r.json()["id"]
    names = list(projects)
    ids: list[str] = []
    project_of: dict[str, str] = {}

    def submit(count: int) -> None:
        for _ in range(count):
            i = len(ids)
            name = names[i % len(names)]
            body = {"name": f"sh-{i}", "projectId": projects[name], "spec": {
                "image": "busybox", "compute": COMPUTE[i % len(COMPUTE)], "annotations": [
                    {"name": "sim.fairway.io/run-seconds", "value": "3"}]}}
            r = api.post("/api/v1/workloads/trainings", json=body)
            assert r.status_code == 202, r.text
            ids.append(r.json()["workloadId"])
            project_of[ids[-1]] = name

    by = await wait_spread(stack)
    submit(COUNT // 3)
    await asyncio.sleep(2)  # mid-flight: some Creating, some Running, some done
    victim = max(LIFECYCLES, key=lambda n: len(by.get(n, ())))
    orphaned = by[victim]
    old = pid_of(stack, victim)
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()
    submit(COUNT // 3)  # handed on to the shards' next holders
    taken_over = None
    while taken_over is None:
        now = holders(stack)
        if all(now[s] and f"-{old}-" not in now[s] for s in orphaned):
            taken_over = time.monotonic() - killed_at
        assert time.monotonic() - killed_at < 60, f"shards {orphaned} not taken over: {now}"
        await asyncio.sleep(0.2)
    print(f"\nTAKEOVER {len(orphaned)} shards of a killed lifecycle replica in {taken_over:.1f} s")
    # Within one lease period of the last renewal (which may have come a renewal before
    # the kill) plus a look or two.
    assert taken_over < LEASE_SECONDS + 3 * 2.0 + 2.0, taken_over
    submit(COUNT - len(ids))

    deadline = time.monotonic() + 240
    remaining = set(ids)
    while remaining and time.monotonic() < deadline:
        page = api.get("/api/v1/workloads", params={
            "filterBy": "name=@sh-", "limit": 500}).json()["workloads"]
        remaining = set(ids) - {w["workloadId"] for w in page if w["phase"] == "Completed"}
        await asyncio.sleep(1)
    assert not remaining, f"{len(remaining)} workloads never completed"

    for name in names:
        assert_legal_stories(await all_phase_events(stack.nats_url, name),
                             [w for w in ids if project_of[w] == name])

    kube = client.CoreV1Api(config.new_client_from_config(config_file=stack.kubeconfig))
    per_workload: Counter[str] = Counter()
    scheduled: Counter[str] = Counter()
    for name in names:
        for pod in kube.list_namespaced_pod(f"fairway-{name}").items:
            if (wid := (pod.metadata.labels or {}).get("fairway.io/workload-id")) in ids:
                per_workload[wid] += 1
        for event in kube.list_namespaced_event(f"fairway-{name}").items:
            if event.reason == "Scheduled":  # kubesim's record of each bind, per pod
                # object: a pod its node refused is made again under the same name
                scheduled[f"{event.involved_object.name} {event.involved_object.uid}"] += 1
    assert len(per_workload) == len(ids) and set(per_workload.values()) == {1}
    assert scheduled and max(scheduled.values()) == 1, "a pod was bound twice"
    assert_no_device_double_booked(kube)

    # Both metrics replicas count, per project, what the database holds.
    want = Counter(project_of[w] for w in ids)
    processes = stack.info()["processes"]
    for replica in ("metrics", "metrics-2"):
        deadline = time.monotonic() + 30
        while True:
            samples = await asyncio.to_thread(scrape, processes[replica]["url"])
            got = {name: sum(matching(samples, "fairway_workloads", project=name,
                                      phase="Completed").values()) for name in names}
            if got == dict(want):
                break
            assert time.monotonic() < deadline, (replica, got, dict(want))
            await asyncio.sleep(1)
    deadline = time.monotonic() + 60
    while pid_of(stack, victim) in (None, old):
        assert time.monotonic() < deadline, f"{victim} not restarted: {supervisor.events}"
        await asyncio.sleep(0.5)
    await wait_spread(stack, timeout=90)  # the restarted replica takes its share again
    assert supervisor.failure is None
