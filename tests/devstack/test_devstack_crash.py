"""The supervised stack under `kill -9`: with 200 workloads in flight, each service, then NATS,
then PostgreSQL, then kubesim is killed in turn; the supervisor restarts each and keeps running,
every workload completes, no pod is created twice, no phase is repeated, and kubesim comes back
with its pods from its snapshot. Slow (a few minutes): marked e2e like the other whole-stack
tests."""

import asyncio
import json
import os
import signal
import time
from collections import defaultdict
from itertools import pairwise

import httpx
import nats
import pytest

from fairway_devstack.stack import SERVICES, RestartPolicy, Stack
from fairway_devstack.testing import Supervisor, running_stack, supervising

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

COUNT = 200
RUN_SECONDS = "20"  # long enough that each kill finds workloads in every phase
VICTIMS = (*SERVICES, "nats", "postgres", "kubesim")


def pid_of(stack: Stack, name: str) -> int:
    return stack.info()["processes"][name]["pid"]


def wait_restarted(stack: Stack, supervisor: Supervisor, name: str, old_pid: int) -> None:
    """Until the supervisor has started `name` again and the whole stack answers ready."""
    deadline = time.monotonic() + 180
    while True:
        assert supervisor.running, f"the supervisor died: {supervisor.failure!r}"
        if pid_of(stack, name) != old_pid:
            try:
                stack.wait_ready(timeout=5)
                return
            except Exception:  # a service still reconnecting: the supervisor looks after it
                pass
        assert time.monotonic() < deadline, (name, supervisor.events[-10:])
        time.sleep(0.5)


def submit_wave(api: httpx.Client, project_id: str, first: int, count: int) -> list[str]:
    ids = []
    for i in range(first, first + count):
        body = {"name": f"crash-{i}", "projectId": project_id, "spec": {
            "image": "busybox", "annotations": [
                {"name": "sim.fairway.io/run-seconds", "value": RUN_SECONDS}]}}
        response = api.post("/api/v1/workloads/trainings", json=body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["workloadId"])
    return ids


def kubesim_pods(kubesim: httpx.Client, timeout: float = 60) -> dict[str, str]:
    """Pod name → uid; waits for kubesim to answer (it may just have been restarted)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = kubesim.get("/api/v1/pods")
            if answer.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "kubesim does not answer"
        time.sleep(0.3)
    pods = answer.json()["items"]
    return {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p["metadata"]["uid"]
            for p in pods}


def unfinished(api: httpx.Client, ids: list[str]) -> set[str]:
    try:
        page = api.get("/api/v1/workloads", params={"filterBy": "name=@crash-", "limit": 500})
    except httpx.HTTPError:
        return set(ids)
    if page.status_code != 200:
        return set(ids)
    done = {w["workloadId"] for w in page.json()["workloads"] if w["phase"] == "Completed"}
    return set(ids) - done


async def phase_stories(nats_url: str) -> dict[str, list[dict]]:
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().subscribe("fairway.phase.>", stream="FAIRWAY_PHASES",
                                             ordered_consumer=True)
        stories: dict[str, list[dict]] = defaultdict(list)
        while True:
            try:
                msg = await sub.next_msg(timeout=3)
            except nats.errors.TimeoutError:
                return stories
            event = json.loads(msg.data)
            stories[event["workloadId"]].append(event)
    finally:
        await nc.close()


def test_kill_9_of_every_process_in_turn_loses_and_repeats_nothing(tmp_path):
    policy = RestartPolicy(first_delay=0.5, max_delay=5)
    with (
        # PostgreSQL as `make up` runs it: without fsync a commit it answered could be lost.
        running_stack(tmp_path / "stack", kubesim_args=("--admin",), restart_policy=policy,
                      fast_storage=False) as stack,
        supervising(stack) as supervisor,
    ):
        token = stack.admin_token_file.read_text().strip()
        api = httpx.Client(base_url=stack.api_url, timeout=30, trust_env=False,
                           headers={"Authorization": f"Bearer {token}"})
        kubesim = httpx.Client(base_url=stack.info()["processes"]["kubesim"]["url"],
                               timeout=10, trust_env=False,
                               headers={"Authorization": "Bearer kubesim"})
        projects = api.get("/api/v1/org-unit/projects").json()["projects"]
        project_id = next(p["id"] for p in projects if p["name"] == "default")

        ids: list[str] = []
        wave = COUNT // len(VICTIMS)
        for n, victim in enumerate(VICTIMS):
            count = wave if n < len(VICTIMS) - 1 else COUNT - len(ids)
            ids += submit_wave(api, project_id, len(ids), count)
            if victim == "kubesim":
                time.sleep(3)  # a periodic snapshot (every 2 s) has every pod
                before = kubesim_pods(kubesim)
            old = pid_of(stack, victim)
            killed_at = time.monotonic()
            os.kill(old, signal.SIGKILL)
            wait_restarted(stack, supervisor, victim, old)
            print(f"{victim}: killed → stack ready again in {time.monotonic() - killed_at:.1f}s")
        after = kubesim_pods(kubesim)
        assert before, "pods were running when kubesim was killed"
        restored = {name: uid for name, uid in before.items() if after.get(name) == uid}
        assert len(restored) >= len(before) - 5, (  # some may have finished and gone since
            f"kubesim lost pods: {sorted(set(before) - set(restored))[:10]}")

        started = time.monotonic()
        deadline = started + 600
        while (left := unfinished(api, ids)) and time.monotonic() < deadline:
            time.sleep(2)
        assert not left, f"{len(left)} workloads never completed"
        print(f"all {COUNT} completed {time.monotonic() - started:.0f}s after the last kill")

        creations = kubesim.get("/admin/creations/pods").json()
        twice = {name: n for name, n in creations.items() if n > 1}
        assert not twice, f"pods created more than once: {twice}"

        stories = asyncio.run(phase_stories(stack.nats_url))
        for wid in ids:
            phases = [e["phase"] for e in stories[wid]]
            sequences = [e["sequence"] for e in stories[wid]]
            assert sequences == list(range(1, len(phases) + 1)), (wid, sequences)
            assert all(a != b for a, b in pairwise(phases)), (wid, phases)
            assert phases[-1] == "Completed", (wid, phases)

        assert supervisor.running, f"the supervisor died: {supervisor.failure!r}"
        restarts = {e.process for e in supervisor.events if " restarted " in e.text + " "}
        assert restarts >= set(VICTIMS), supervisor.events


def test_a_second_start_of_the_stack_keeps_kubesims_pods(tmp_path):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kept"},
           "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    uids = []
    for _ in range(2):
        with running_stack(tmp_path / "stack", services=()) as stack:
            kubesim = httpx.Client(base_url=stack.info()["processes"]["kubesim"]["url"],
                                   timeout=10, trust_env=False,
                                   headers={"Authorization": "Bearer kubesim"})
            if not uids:
                created = kubesim.post("/api/v1/namespaces/default/pods", json=pod)
                assert created.status_code == 201, created.text
            uids.append(kubesim_pods(kubesim).get("default/kept"))
    assert uids[0] is not None and uids == [uids[0], uids[0]], "the same pod, not a new one"
