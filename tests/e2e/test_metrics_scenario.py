"""A scripted scenario on the whole stack, then every series of the metrics service with the
value it must have (scraped from the metrics service's /metrics).

Two projects of one department: project A runs a training at 60 % GPU utilization, a
distributed job (several pods, one workload) and a training that fails; the training is
reclaimed once (the decision published as the scheduler would) and runs again. Project B,
limited to one GPU, asks for two and waits with the scheduler's reason. A poison message is
dead-lettered. A second scenario has the scheduler reclaim GPUs itself. The stack is shared
with other tests: cluster figures are checked against each other, project figures exactly.
"""

import asyncio
import time
import uuid

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fairway_bus import publish_model, publish_raw
from fairway_contracts import subjects
from fairway_contracts.events import PreemptDecision
from fairway_contracts.workloads import utcnow

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple], float]


def scrape(stack) -> Samples:
    response = httpx.get(f"{stack.service_url('metrics')}/metrics", timeout=10)
    response.raise_for_status()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def matching(samples: Samples, name: str, **labels) -> dict[tuple, float]:
    """The samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return {k: v for k, v in samples.items() if k[0] == name and want <= set(k[1])}


def total(samples: Samples, name: str, **labels) -> float:
    found = matching(samples, name, **labels)
    assert found, f"no {name} with {labels}"
    return sum(found.values())


async def until(check, timeout: float = 60.0, what: str = ""):
    """Retry `check` (a function that asserts) until it passes; its last failure otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def create(api, path: str, body: dict) -> dict:
    response = api.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


POOL = "a100"


def ensure_simulated_pools(api) -> None:
    """kubesim's pools registered in the API as `fairway up` does (same labels as the nodes
    carry, so no node changes pool): quotas and workloads can then name pool a100."""
    for pool in ("a100", "t4"):
        response = api.post("/api/v1/node-pools", json={
            "name": pool, "labelKey": "fairway.io/node-pool", "labelValue": pool})
        assert response.status_code in (201, 409), response.text


def ask_delete(api, kind: str, *workload_ids: str) -> None:
    for wid in workload_ids:
        response = api.delete(f"/api/v1/workloads/{kind}/{wid}")
        assert response.status_code in (202, 404), response.text


def wait_deleted(api, *workload_ids: str, timeout: float = 60.0) -> None:
    """Wait until the workloads and their pods are gone: the stack's GPUs are shared by every
    test of the session, and the next test's pods need them free on the nodes too."""
    deadline = time.monotonic() + timeout
    left = list(workload_ids)
    while left:
        response = api.get(f"/api/v1/workloads/{left[0]}")
        if response.status_code == 404 or response.json()["phase"] == "Deleted":
            left.pop(0)
            continue
        assert time.monotonic() < deadline, (
            f"not deleted after {timeout:.0f} s: {left}; {left[0]} is {response.json()['phase']}")
        time.sleep(0.3)


def delete(api, kind: str, *workload_ids: str, timeout: float = 60.0) -> None:
    """Free what a test held, and wait until it is gone."""
    ask_delete(api, kind, *workload_ids)
    wait_deleted(api, *workload_ids, timeout=timeout)


def submit(api, kind: str, project_id: str, name: str, annotations: dict[str, str] | None = None,
           **spec) -> str:
    body = {"name": name, "projectId": project_id, "spec": {
        "image": "busybox", "compute": {"gpuDevicesRequest": 1}, "nodePools": [POOL],
        "annotations": [{"name": k, "value": v} for k, v in (annotations or {}).items()],
        **spec}}
    response = api.post(f"/api/v1/workloads/{kind}", json=body)
    assert response.status_code == 202, response.text
    return response.json()["workloadId"]


@pytest.fixture
def held(api):
    """Workloads a test started, (kind, id), deleted when it ends however it ends: all asked
    at once, then waited for, so the teardown lasts one grace period (kubesim's running pods
    use their 30 s), not one per workload."""
    workloads: list[tuple[str, str]] = []
    yield workloads
    by_kind: dict[str, list[str]] = {}
    for kind, wid in workloads:
        by_kind.setdefault(kind, []).append(wid)
    for kind, wids in by_kind.items():
        ask_delete(api, kind, *wids)
    wait_deleted(api, *(wid for _, wid in workloads))


async def publish(stack, subject: str, event=None, raw: bytes | None = None) -> None:
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        if raw is not None:
            await publish_raw(js, subject, raw, msg_id=uuid.uuid4().hex)
        else:
            await publish_model(js, subject, event, msg_id=uuid.uuid4().hex)
    finally:
        await nc.close()


async def test_every_series_after_a_scenario(stack, api, phases, held):
    tag = uuid.uuid4().hex[:6]
    ensure_simulated_pools(api)
    dept = create(api, "/api/v1/org-unit/departments", {
        "name": f"mx-{tag}", "resources": [{"nodePool": {"name": POOL},
                                            "gpu": {"deserved": 4}}]})
    a = create(api, "/api/v1/org-unit/projects", {
        "name": f"mx-a-{tag}", "parentId": dept["id"],
        "resources": [{"nodePool": {"name": POOL}, "gpu": {"deserved": 2}}]})
    b = create(api, "/api/v1/org-unit/projects", {
        "name": f"mx-b-{tag}", "parentId": dept["id"],
        "resources": [{"nodePool": {"name": POOL}, "gpu": {"deserved": 1, "limit": 1}}]})
    A, B, D = a["name"], b["name"], dept["name"]
    before = scrape(stack)
    busy = {"sim.fairway.io/run-seconds": "3600", "sim.fairway.io/gpu-utilization": "60"}

    runner = submit(api, "trainings", a["id"], "runner", busy)
    gang = submit(api, "distributed", a["id"], "gang", busy, numWorkers=2)
    failing = submit(api, "trainings", a["id"], "failing",
                     {"sim.fairway.io/run-seconds": "0.5", "sim.fairway.io/exit-code": "3"},
                     backoffLimit=0)
    waiting = submit(api, "workspaces", b["id"], "waiting", compute={"gpuDevicesRequest": 2})
    held += [("trainings", runner), ("distributed", gang), ("workspaces", waiting)]

    ran = await phases.read(runner, until={"Running"})
    gang_events = await phases.read(gang, until={"Running", "Failed"})
    assert gang_events[-1]["phase"] == "Running", gang_events[-1]
    gang_gpus = sum(p["gpus"] for p in gang_events[-1]["pods"])
    assert len(gang_events[-1]["pods"]) > 1 and gang_gpus == len(gang_events[-1]["pods"])
    assert (await phases.read(failing, until={"Failed", "Completed"}))[-1]["phase"] == "Failed"

    # a reclaim of the running training, as the scheduler decides one; it waits, then runs
    await publish(stack, subjects.preempt(A, runner), PreemptDecision(
        decision_id=f"reclaim-{tag}", workload_id=runner, project=A, reason="reclaim",
        by=waiting, message="project mx-b is below its quota", decided_at=utcnow()))
    again = await phases.read(runner, until={"Running", "Failed"}, skip=len(ran))
    assert again[0]["phase"] == "Pending" and again[-1]["phase"] == "Running", again
    # a message no consumer can read: dead-lettered by every consumer of the subject
    await publish(stack, subjects.preempt(A, str(uuid.uuid4())), raw=b"{not json")

    def waiting_reason() -> str:
        view = api.get(f"/api/v1/workloads/{waiting}").json()
        assert view["phase"] == "Pending" and view["phaseReason"] not in (
            None, "WaitingForScheduler", "CreatingPods", "WaitingForPods"), view
        return view["phaseReason"]

    reason = await until(waiting_reason)

    def settled() -> Samples:
        s = scrape(stack)
        a_, b_ = {"project": A, "department": D}, {"project": B, "department": D}
        # workloads by phase and type: the gang's pods are one workload
        assert total(s, "fairway_workloads", **a_, type="training", phase="Running") == 1
        assert total(s, "fairway_workloads", **a_, type="training", phase="Failed") == 1
        assert total(s, "fairway_workloads", **a_, type="distributed", phase="Running") == 1
        assert total(s, "fairway_workloads", **b_, type="workspace", phase="Pending") == 1
        assert total(s, "fairway_workloads", **b_, type="workspace", phase="Running") == 0
        # GPUs asked for and held (the failed training asks for nothing any more)
        assert total(s, "fairway_workload_gpus_requested", **a_, type="training") == 1
        assert total(s, "fairway_workload_gpus_requested", **a_, type="distributed") == gang_gpus
        assert total(s, "fairway_workload_gpus_requested", **b_, type="workspace") == 2
        assert total(s, "fairway_workload_gpus_allocated", **a_, type="training") == 1
        assert total(s, "fairway_workload_gpus_allocated", **a_, type="distributed") == gang_gpus
        assert total(s, "fairway_workload_gpus_allocated", **b_) == 0
        # waiting: by the scheduler's reason, how long, and in total
        assert total(s, "fairway_workloads_pending", **b_, reason=reason) == 1
        assert sum(matching(s, "fairway_workloads_pending", **a_).values()) == 0
        assert total(s, "fairway_workload_oldest_pending_seconds", **b_) > 0
        assert total(s, "fairway_workload_oldest_pending_seconds", **a_) == 0
        assert total(s, "fairway_workload_pending_seconds_total", **a_, type="training") > 0
        assert total(s, "fairway_workload_running_seconds_total", **a_, type="training") > 0
        assert total(s, "fairway_workload_running_seconds_total", **b_) == 0
        assert total(s, "fairway_preemptions_total", **a_, reason="reclaim") == 1
        # the scheduler's view of each project and the department in pool a100
        pa = {"project": A, "department": D, "node_pool": POOL}
        pb = {"project": B, "department": D, "node_pool": POOL}
        a_gpus = 1 + gang_gpus
        assert total(s, "fairway_project_gpu_deserved", **pa) == 2
        assert total(s, "fairway_project_gpu_deserved", **pb) == 1
        assert total(s, "fairway_project_gpu_limit", **pb) == 1
        assert not matching(s, "fairway_project_gpu_limit", **pa), "A has no limit"
        assert total(s, "fairway_project_gpu_over_quota_weight", **pa) > 0
        assert total(s, "fairway_project_gpu_fair_share", **pa) > 0
        assert total(s, "fairway_project_gpu_allocated", **pa) == a_gpus
        assert total(s, "fairway_project_gpu_allocated_non_preemptible", **pa) == 0
        assert total(s, "fairway_project_gpu_requested", **pa) == a_gpus
        assert total(s, "fairway_project_gpu_requested", **pb) == 2
        assert total(s, "fairway_project_gpu_allocated", **pb) == 0
        pd = {"department": D, "node_pool": POOL}
        assert total(s, "fairway_department_gpu_deserved", **pd) == 4
        assert total(s, "fairway_department_gpu_allocated", **pd) == a_gpus
        assert total(s, "fairway_department_gpu_requested", **pd) == a_gpus + 2
        assert total(s, "fairway_department_gpu_fair_share", **pd) > 0
        # nodes, pools and the cluster agree with each other
        ready = {k[1]: v for k, v in matching(s, "fairway_node_ready").items()}
        gpus = {k[1]: v for k, v in matching(s, "fairway_node_gpus").items()}
        assert total(s, "fairway_cluster_gpus") == sum(gpus[k] for k in gpus if ready[k])
        assert total(s, "fairway_cluster_gpus") == total(s, "fairway_nodepool_gpus")
        assert total(s, "fairway_cluster_gpus_allocated") == total(
            s, "fairway_node_gpus_allocated") == total(s, "fairway_nodepool_gpus_allocated")
        assert total(s, "fairway_cluster_gpus_allocated") >= a_gpus
        assert total(s, "fairway_cluster_nodes") == total(s, "fairway_nodepool_nodes") == len(
            ready)
        assert total(s, "fairway_nodepool_gpus_allocated", node_pool=POOL) >= a_gpus
        return s

    s = await until(settled, what="the series after the scenario")
    # transitions count up by at least what the scenario did
    for phase, at_least in (("Failed", 1), ("Running", 3), ("Pending", 5)):
        key = ("fairway_phase_transitions_total", (("phase", phase),))
        assert s[key] - before.get(key, 0) >= at_least, phase
    assert total(s, "fairway_workload_submit_to_running_seconds_count", type="distributed") >= 1

    def dead_lettered() -> None:
        now = scrape(stack)
        for consumer in ("metrics-preemptions", "lifecycle-preemptions"):
            key = ("fairway_dead_letters_total", (("consumer", consumer),))
            assert now.get(key, 0) - before.get(key, 0) == 1, consumer

    await until(dead_lettered)

    # utilization as kubesim reports it, once lifecycle has closed a window of the workloads
    def utilized() -> None:
        now = scrape(stack)
        pa = {"project": A, "department": D, "node_pool": POOL}
        assert total(now, "fairway_project_gpu_utilization", **pa) == pytest.approx(60)
        assert total(now, "fairway_department_gpu_utilization", department=D) == pytest.approx(60)
        assert total(now, "fairway_cluster_gpu_utilization") > 0
        assert max(matching(now, "fairway_node_gpu_utilization").values()) > 0
        assert total(now, "fairway_nodepool_gpu_utilization", node_pool=POOL) > 0

    await until(utilized, timeout=120)
    for wid in (runner, gang, waiting):
        assert not any(wid in dict(labels).values() for _, labels in scrape(stack))


async def test_a_reclaim_by_the_scheduler_is_counted_by_reason(stack, api, phases, held):
    """Project R1 (no quota in pool t4) fills the pool; project R2 (quota 4 there) asks for two
    GPUs: the scheduler reclaims them, and the series count the reclaim."""
    tag = uuid.uuid4().hex[:6]
    ensure_simulated_pools(api)
    r1 = create(api, "/api/v1/org-unit/projects", {
        "name": f"mx-r1-{tag}", "resources": [{"nodePool": {"name": "t4"},
                                               "gpu": {"deserved": 0}}]})
    r2 = create(api, "/api/v1/org-unit/projects", {
        "name": f"mx-r2-{tag}", "resources": [{"nodePool": {"name": "t4"},
                                               "gpu": {"deserved": 4}}]})
    capacity = await until(lambda: total(scrape(stack), "fairway_nodepool_gpus", node_pool="t4"))
    before = scrape(stack)
    fillers = [submit(api, "trainings", r1["id"], f"filler-{i}",
                      {"sim.fairway.io/run-seconds": "3600"}, nodePools=["t4"])
               for i in range(int(capacity))]
    held += [("trainings", wid) for wid in fillers]
    await phases.read(fillers[0], until={"Running"})
    claimer = submit(api, "trainings", r2["id"], "claimer",
                     {"sim.fairway.io/run-seconds": "3600"}, nodePools=["t4"],
                     compute={"gpuDevicesRequest": 2})
    held.append(("trainings", claimer))
    assert (await phases.read(claimer, until={"Running", "Failed"}, timeout=120))[-1][
        "phase"] == "Running"

    def reclaimed() -> None:
        s = scrape(stack)
        reclaims = matching(s, "fairway_preemptions_total", reason="reclaim")
        counted = sum(v - before.get(k, 0) for k, v in reclaims.items())
        assert counted >= 1, "the scheduler's reclaim is counted"
        assert total(s, "fairway_workload_gpus_allocated", project=r2["name"]) == 2
        assert total(s, "fairway_project_gpu_allocated", project=r2["name"],
                     node_pool="t4") == 2

    await until(reclaimed)
