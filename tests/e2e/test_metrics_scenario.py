"""A scripted scenario on the whole stack, then every series of the metrics service with the
value it must have (scraped from the metrics service's /metrics).

Two projects of one department in pool t4: project A runs a training at 60 % GPU utilization, a
distributed job (several pods, one workload) and a training that fails. Project C, of another
department, fills the rest of the pool and then needs its quota back: the scheduler reclaims A's
training, which waits and runs again once C's short job has completed. Project B, limited to
one GPU, asks for two and waits with the scheduler's reason. A poison message is
dead-lettered. The stack is shared with other tests: cluster figures are checked against each
other, project figures exactly.
"""

import asyncio
import time
import uuid

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fairway_contracts import subjects
from tests.e2e.conftest import create, ensure_simulated_pools
from tests.e2e.conftest import submit as submit_workload

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


POOL = "t4"


def submit(api, kind: str, project_id: str, name: str, annotations: dict[str, str] | None = None,
           **spec) -> str:
    return submit_workload(api, kind, project_id, name, annotations,
                           **{"nodePools": [POOL], **spec})


async def publish_poison(stack, subject: str) -> None:
    """A message no consumer can read, published as any client could."""
    nc = await nats.connect(stack.nats_url)
    try:
        await nc.jetstream().publish(subject, b"{not json",
                                     headers={"Nats-Msg-Id": uuid.uuid4().hex})
    finally:
        await nc.close()


async def test_every_series_after_a_scenario(stack, api, phases, held):
    tag = uuid.uuid4().hex[:6]
    ensure_simulated_pools(api)

    def pool_is_free() -> float:
        s = scrape(stack)
        # every node in the pool kubesim's profile gives it (none left in the default pool)
        assert not matching(s, "fairway_node_gpus", node_pool="default"), "pools not known yet"
        assert total(s, "fairway_nodepool_gpus_allocated", node_pool=POOL) == 0, (
            f"pool {POOL} is not free: the reclaim below counts its GPUs")
        return total(s, "fairway_nodepool_gpus", node_pool=POOL)

    capacity = int(await until(pool_is_free))
    dept = create(api, "/api/v1/org-unit/departments", {
        "name": f"mx-{tag}", "resources": [{"nodePool": {"name": POOL},
                                            "gpu": {"deserved": 4}}]})
    a = create(api, "/api/v1/org-unit/projects", {
        "name": f"mx-a-{tag}", "parentId": dept["id"],
        "resources": [{"nodePool": {"name": POOL}, "gpu": {"deserved": 2}}]})
    b = create(api, "/api/v1/org-unit/projects", {
        "name": f"mx-b-{tag}", "parentId": dept["id"],
        "resources": [{"nodePool": {"name": POOL}, "gpu": {"deserved": 1, "limit": 1}}]})
    # C's department deserves the rest of the pool: the two departments' quotas fill it, so
    # none is over its fair share but by borrowing.
    rest = [{"nodePool": {"name": POOL}, "gpu": {"deserved": capacity - 4}}]
    c_dept = create(api, "/api/v1/org-unit/departments", {"name": f"mx-cd-{tag}",
                                                          "resources": rest})
    c = create(api, "/api/v1/org-unit/projects", {"name": f"mx-c-{tag}",
                                                  "parentId": c_dept["id"], "resources": rest})
    A, B, C, D = a["name"], b["name"], c["name"], dept["name"]
    before = scrape(stack)
    busy = {"sim.fairway.io/run-seconds": "3600", "sim.fairway.io/gpu-utilization": "60"}

    runner = submit(api, "trainings", a["id"], "runner", busy)
    gang = submit(api, "distributed", a["id"], "gang", busy, numWorkers=3)
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

    # C takes the room A left (A borrows beyond its quota of 2), then needs one GPU more of its
    # quota back: the scheduler reclaims from A the one workload that leaves A its fair share,
    # the training, which waits, then runs again once C's short job has completed.
    a_gpus = 1 + gang_gpus
    fillers = [submit(api, "trainings", c["id"], f"filler-{i}",
                      {"sim.fairway.io/run-seconds": "3600"})
               for i in range(capacity - a_gpus)]
    held += [("trainings", wid) for wid in fillers]
    for wid in fillers:
        await phases.read(wid, until={"Running"})
    claimer = submit(api, "trainings", c["id"], "claimer", {"sim.fairway.io/run-seconds": "2"})
    held.append(("trainings", claimer))
    again = await phases.read(runner, until={"Running", "Failed"}, skip=len(ran), timeout=120)
    assert again[0]["phase"] == "Pending" and again[-1]["phase"] == "Running", again
    assert again[0]["reason"] == "Preempted" and "(reclaim)" in again[0]["message"], again[0]
    claimed = await phases.read(claimer, until={"Completed", "Failed"})
    assert [e["phase"] for e in claimed][-2:] == ["Running", "Completed"], claimed
    # a message no consumer can read: dead-lettered by every consumer of the subject
    await publish_poison(stack, subjects.preempt(A, str(uuid.uuid4())))

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
        # the reclaiming project holds what it kept (its short job has completed)
        assert total(s, "fairway_workload_gpus_allocated", project=C) == len(fillers)
        assert total(s, "fairway_project_gpu_allocated", project=C, node_pool=POOL) == len(
            fillers)
        # the scheduler's view of each project and the department in the pool
        pa = {"project": A, "department": D, "node_pool": POOL}
        pb = {"project": B, "department": D, "node_pool": POOL}
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

