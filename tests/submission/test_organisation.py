"""Node pools, departments and projects: CRUD, validation by field path, quotas against the
department, and the org events each change publishes."""

import pytest

from tests.submission.conftest import start_harness

pytestmark = pytest.mark.infra

GPU4 = {"nodePool": {"name": "default"}, "gpu": {"deserved": 4, "limit": 8, "overQuotaWeight": 2},
        "cpu": {"deserved": 16}, "memory": {"deserved": 65536}}


async def test_default_node_pool_department_and_project_exist(harness):
    admin = harness.admin
    pools = (await admin.get("/api/v1/node-pools")).json()["nodePools"]
    assert [p["name"] for p in pools] == ["default"]
    departments = (await admin.get("/api/v1/org-unit/departments")).json()["departments"]
    assert [d["name"] for d in departments] == ["default"]
    projects = (await admin.get("/api/v1/org-unit/projects")).json()["projects"]
    assert projects[0]["name"] == "default"
    assert projects[0]["parentId"] == departments[0]["id"]
    assert projects[0]["status"] == {"nodePoolResources": []}


async def test_node_pool_crud_publishes_events(harness):
    admin = harness.admin
    r = await admin.post("/api/v1/node-pools", json={
        "name": "a100", "labelKey": "fairway.io/pool", "labelValue": "a100",
        "placementStrategy": {"gpu": "spread", "cpu": "binpack"}})
    assert r.status_code == 201, r.text
    pool = r.json()
    assert pool["placementStrategy"]["gpu"] == "spread"
    assert (await admin.post("/api/v1/node-pools", json={"name": "a100"})).status_code == 409
    r = await admin.put(f"/api/v1/node-pools/{pool['id']}", json={"labelValue": "a100-80g"})
    assert r.status_code == 200 and r.json()["labelValue"] == "a100-80g"
    events = await harness.outbox("fairway.org.nodepool.a100")
    assert [e["labelValue"] for _, e in events] == ["a100", "a100-80g"]
    assert events[0][1]["gpuPlacementStrategy"] == "spread"
    r = await admin.post("/api/v1/node-pools", json={"name": "Bad_Name", "surprise": 1})
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["details"]}
    assert fields == {"name", "surprise"}
    assert (await admin.delete("/api/v1/node-pools/default")).status_code == 409


async def test_department_and_project_with_quotas(harness):
    admin = harness.admin
    r = await admin.post("/api/v1/org-unit/departments", json={
        "name": "research", "resources": [GPU4]})
    assert r.status_code == 201, r.text
    dept = r.json()
    assert dept["resources"][0]["gpu"] == {"deserved": 4, "limit": 8, "overQuotaWeight": 2}
    r = await admin.post("/api/v1/org-unit/projects", json={
        "name": "team-a", "parentId": dept["id"], "defaultNodePools": ["default"],
        "resources": [{"nodePool": {"name": "default"}, "gpu": {"deserved": 3, "limit": -1}}]})
    assert r.status_code == 201, r.text
    project = r.json()
    assert project["parentId"] == dept["id"]
    assert project["resources"][0]["gpu"]["limit"] is None
    assert project["status"]["nodePoolResources"][0]["fairShare"]["gpu"] == 0
    # the department deserves 4 GPUs; 3 are taken: 2 more do not fit
    r = await admin.post("/api/v1/org-unit/projects", json={
        "name": "team-b", "parentId": dept["id"],
        "resources": [{"nodePool": {"name": "default"}, "gpu": {"deserved": 2}}]})
    assert r.status_code == 409, r.text
    assert r.json()["details"][0]["field"] == "resources[0].gpu.deserved"
    r = await admin.post("/api/v1/org-unit/projects", json={
        "name": "team-b", "parentId": dept["id"],
        "resources": [{"nodePool": {"name": "default"}, "gpu": {"deserved": 1}}]})
    assert r.status_code == 201, r.text
    # nor may the department shrink below its projects
    r = await admin.put(f"/api/v1/org-unit/departments/{dept['id']}", json={
        "resources": [{"nodePool": {"name": "default"}, "gpu": {"deserved": 2}}]})
    assert r.status_code == 409
    # a project's change is checked against its siblings, not itself
    r = await admin.put(f"/api/v1/org-unit/projects/{project['id']}", json={
        "resources": [{"nodePool": {"name": "default"}, "gpu": {"deserved": 3, "limit": 6}}]})
    assert r.status_code == 200, r.text
    events = await harness.outbox(f"fairway.org.project.{project['id']}")
    assert events[-1][1]["resources"][0]["gpu"] == {"deserved": 3.0, "limit": 6.0,
                                                    "overQuotaWeight": 1.0}
    assert events[-1][1]["departmentId"] == dept["id"]
    # when it was created, for the scheduler's ties (the older queue first)
    assert events[-1][1]["createdAt"] == events[0][1]["createdAt"] is not None
    dept_events = await harness.outbox(f"fairway.org.department.{dept['id']}")
    assert dept_events[0][1]["resources"][0]["nodePool"] == "default"
    assert dept_events[0][1]["createdAt"] is not None
    # a department with projects cannot go; the projects can
    assert (await admin.delete(f"/api/v1/org-unit/departments/{dept['id']}")).status_code == 409
    assert (await admin.delete(f"/api/v1/org-unit/projects/{project['id']}")).status_code == 204
    assert (await admin.get(f"/api/v1/org-unit/projects/{project['id']}")).status_code == 404
    deleted = await harness.outbox(f"fairway.org.project.{project['id']}")
    assert deleted[-1][1]["deleted"] is True


async def test_every_bad_field_is_named(harness):
    r = await harness.admin.post("/api/v1/org-unit/projects", json={
        "name": "team-x", "defaultNodePools": ["nope"],
        "resources": [
            {"nodePool": {"name": "missing"}, "gpu": {"deserved": -1}},
            {"nodePool": {"name": "default"}, "gpu": {"deserved": 2, "limit": 1},
             "cpu": {"overQuotaWeight": -2}, "memory": {"limit": -5}},
        ]})
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["details"]}
    assert fields == {"resources[0].nodePool.name", "resources[0].gpu.deserved",
                      "resources[1].gpu.limit", "resources[1].cpu.overQuotaWeight",
                      "resources[1].memory.limit", "defaultNodePools[0]"}
    r = await harness.admin.post("/api/v1/org-unit/projects", json={"name": "9lives"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "name"
    r = await harness.admin.post("/api/v1/org-unit/projects", json={"name": "default"})
    assert r.status_code == 409
    r = await harness.admin.post("/api/v1/org-unit/projects", json={"name": "x", "parentId": "99"})
    assert r.status_code == 404 and r.json()["details"][0]["field"] == "parentId"


async def test_over_subscription_allowed_by_setting(database_url, tmp_path):
    h = await start_harness(database_url, tmp_path,
                            FAIRWAY_SUBMISSION_ALLOW_DEPARTMENT_OVERSUBSCRIPTION=True)
    try:
        admin = h.admin
        dept = (await admin.post("/api/v1/org-unit/departments", json={
            "name": "small", "resources": [
                {"nodePool": {"name": "default"}, "gpu": {"deserved": 1}}]})).json()
        for name in ("p-one", "p-two"):
            r = await admin.post("/api/v1/org-unit/projects", json={
                "name": name, "parentId": dept["id"],
                "resources": [{"nodePool": {"name": "default"}, "gpu": {"deserved": 1}}]})
            assert r.status_code == 201, r.text
    finally:
        for c in h.clients:
            await c.aclose()
        await h.service.pool.close()


async def test_every_start_publishes_the_whole_organisation(harness):
    for subject in ("fairway.org.nodepool.default", "fairway.org.department.1",
                    "fairway.org.project.1"):
        assert await harness.outbox(subject), subject


def queue_status(kind: str, name: str, pool: str, when, **gpu):
    from fairway_contracts.events import QueueStatusChanged, ResourceStatus

    def resource(**figures) -> ResourceStatus:
        return ResourceStatus(**{"deserved": 0, "limit": -1, "over_quota_weight": 1,
                                 "fair_share": 0, "allocated": 0,
                                 "allocated_non_preemptible": 0, "requested": 0, **figures})

    return QueueStatusChanged(kind=kind, name=name, node_pool=pool, gpu=resource(**gpu),
                              cpu=resource(), memory=resource(), changed_at=when)


async def test_a_units_status_is_the_schedulers_last_queue_status(harness):
    """Allocated, non-preemptible, requested and fair share per pool: as the scheduler last
    published them for the unit's queue; an older status arriving late changes nothing."""
    from datetime import UTC, datetime, timedelta

    from fairway_submission import repository as repo

    admin = harness.admin
    project = (await admin.post("/api/v1/org-unit/projects", json={
        "name": "status-p", "resources": [{"nodePool": {"name": "default"},
                                          "gpu": {"deserved": 2}}]})).json()
    now = datetime.now(UTC)
    async with harness.service.pool.acquire() as conn:
        assert await repo.apply_queue_status(conn, queue_status(
            "project", "status-p", "default", now, fair_share=2.5, allocated=3,
            allocated_non_preemptible=1, requested=4.5))
        assert await repo.apply_queue_status(conn, queue_status(
            "project", "status-p", "spot", now, allocated=0.5, requested=0.5))
        assert not await repo.apply_queue_status(conn, queue_status(
            "project", "status-p", "default", now - timedelta(seconds=1), allocated=9))
        assert await repo.apply_queue_status(conn, queue_status(
            "department", "default", "default", now, fair_share=7, allocated=3, requested=5))
    got = (await admin.get(f"/api/v1/org-unit/projects/{project['id']}")).json()
    default, spot = got["status"]["nodePoolResources"]
    assert default == {"nodePool": {"name": "default"},
                       "allocated": {"gpu": 3, "cpu": 0, "memory": 0},
                       "allocatedNonPreemptible": {"gpu": 1, "cpu": 0, "memory": 0},
                       "requested": {"gpu": 4.5, "cpu": 0, "memory": 0},
                       "fairShare": {"gpu": 2.5, "cpu": 0, "memory": 0}}
    assert spot["nodePool"] == {"name": "spot"} and spot["allocated"]["gpu"] == 0.5
    listed = (await admin.get("/api/v1/org-unit/projects")).json()["projects"]
    assert next(p for p in listed if p["name"] == "status-p")["status"] == got["status"]
    departments = (await admin.get("/api/v1/org-unit/departments")).json()["departments"]
    default_department = next(d for d in departments if d["name"] == "default")
    [pool] = default_department["status"]["nodePoolResources"]
    assert pool["fairShare"]["gpu"] == 7 and pool["requested"]["gpu"] == 5


@pytest.mark.parametrize("odd", ["²", "١٢", "1e3", "-1", "99999999999999999999"])
async def test_an_id_that_is_not_plain_ascii_digits_is_not_found(harness, odd):
    # "²".isdigit() is True and int("²") raises: such ids answered 500 (issue 24).
    admin = harness.admin
    for path in (f"/api/v1/org-unit/projects/{odd}", f"/api/v1/org-unit/departments/{odd}",
                 f"/api/v1/node-pools/{odd}", f"/api/v1/users/{odd}"):
        r = await admin.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text)
    r = await admin.post("/api/v1/workloads/trainings", json={
        "name": "odd-id", "projectId": odd, "spec": {"image": "busybox"}})
    assert r.status_code in (404, 422), r.text
    assert r.status_code != 500


async def test_node_pool_settings_are_published_and_swap_settings_checked_at_the_door(
        harness):
    from datetime import UTC, datetime

    from fairway_contracts.events import NodeInventory

    async def read():
        return [NodeInventory(name="g-1", node_pool="gpus", ready=True, gpus=2,
                              gpu_memory_mib=40960, observed_at=datetime.now(UTC))]

    harness.service.peers.read_inventory = read
    admin = harness.admin
    r = await admin.post("/api/v1/node-pools", json={
        "name": "gpus", "labelKey": "fairway.io/node-pool", "labelValue": "gpus",
        "gpuResourceOptimization": {"nodeLevelSchedulerEnabled": True}})
    assert r.status_code == 201, r.text
    pool = r.json()
    [(_, event)] = await harness.outbox("fairway.org.nodepool.gpus")
    assert event["nodeLevelSchedulerEnabled"] is True
    refused = [
        ({"swapEnabled": True}, "gpuResourceOptimization.cpuSwapMemorySize",
         "swapEnabled needs host memory"),
        ({"swapEnabled": True, "cpuSwapMemorySize": "0"},
         "gpuResourceOptimization.cpuSwapMemorySize", "above zero"),
        ({"swapEnabled": True, "cpuSwapMemorySize": "100Gi",
          "reservedGpuMemoryForSwapOperations": "40Gi"},
         "gpuResourceOptimization.reservedGpuMemoryForSwapOperations",
         "node g-1's devices have 40960 MiB"),
    ]
    for settings, field, words in refused:
        r = await admin.put(f"/api/v1/node-pools/{pool['id']}",
                            json={"gpuResourceOptimization": settings})
        assert r.status_code == 422, r.text
        [detail] = r.json()["details"]
        assert detail["field"] == field and words in detail["reason"], detail
    r = await admin.put(f"/api/v1/node-pools/{pool['id']}", json={"gpuResourceOptimization": {
        "swapEnabled": True, "cpuSwapMemorySize": "100Gi",
        "reservedGpuMemoryForSwapOperations": "2Gi", "nodeLevelSchedulerEnabled": False}})
    assert r.status_code == 200, r.text
    events = await harness.outbox("fairway.org.nodepool.gpus")
    assert [e["nodeLevelSchedulerEnabled"] for _, e in events] == [True, False]
    # the swap settings reach the scheduler and lifecycle, in MiB
    assert [(e["swapEnabled"], e["cpuSwapMemoryMib"], e["reservedGpuMemoryForSwapMib"])
            for _, e in events] == [(False, 0, 0), (True, 102400, 2048)]
    # a new pool is checked the same way
    r = await admin.post("/api/v1/node-pools", json={
        "name": "noswap", "gpuResourceOptimization": {"swapEnabled": True}})
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "gpuResourceOptimization.cpuSwapMemorySize"


async def test_a_node_pool_sets_its_own_time_aware_fairness(harness):
    """schedulingConfiguration.timeAwareFairness: stored, shown, published to the scheduler;
    fields left out are absent (the scheduler's cluster setting holds); bad values are
    refused naming the field."""
    admin = harness.admin
    r = await admin.post("/api/v1/node-pools", json={
        "name": "h100", "labelKey": "fairway.io/pool", "labelValue": "h100",
        "schedulingConfiguration": {"timeAwareFairness": {
            "enabled": True, "windowType": "tumbling", "windowSize": "7d",
            "halfLifePeriod": "1d", "kValue": 0.5}}})
    assert r.status_code == 201, r.text
    pool = r.json()
    assert pool["schedulingConfiguration"]["timeAwareFairness"]["windowType"] == "tumbling"
    r = await admin.patch(f"/api/v1/node-pools/{pool['id']}", json={
        "schedulingConfiguration": {"timeAwareFairness": {"enabled": False}}})
    assert r.status_code == 200, r.text
    events = await harness.outbox("fairway.org.nodepool.h100")
    assert [e.get("timeAwareFairness") for _, e in events] == [
        {"enabled": True, "windowType": "tumbling", "windowSize": "7d", "halfLifePeriod": "1d",
         "kValue": 0.5},
        {"enabled": False, "windowType": None, "windowSize": None, "halfLifePeriod": None,
         "kValue": None}]
    plain = (await admin.post("/api/v1/node-pools", json={"name": "plain"})).json()
    assert plain["schedulingConfiguration"] is None
    for body, field in (
            ({"windowType": "hopping"}, "schedulingConfiguration.timeAwareFairness.windowType"),
            ({"windowSize": "0d"}, "schedulingConfiguration.timeAwareFairness.windowSize"),
            ({"windowSize": "7 days"}, "schedulingConfiguration.timeAwareFairness.windowSize"),
            ({"kValue": -1}, "schedulingConfiguration.timeAwareFairness.kValue"),
            ({"window": "7d"}, "schedulingConfiguration.timeAwareFairness.window")):
        r = await admin.post("/api/v1/node-pools", json={
            "name": "bad", "schedulingConfiguration": {"timeAwareFairness": body}})
        assert r.status_code == 422, (body, r.text)
        assert {d["field"] for d in r.json()["details"]} == {field}, r.json()


async def test_a_units_status_shows_usage_and_the_corrected_weight(harness):
    """With time-aware fairness on in a pool the scheduler's queue status carries the usage
    and the corrected weight: the status shows them (CPU usage in core-seconds); a pool where
    it is off shows neither."""
    from datetime import UTC, datetime

    from fairway_submission import repository as repo

    admin = harness.admin
    project = (await admin.post("/api/v1/org-unit/projects", json={
        "name": "usage-p", "resources": [{"nodePool": {"name": "default"},
                                         "gpu": {"deserved": 1}}]})).json()
    now = datetime.now(UTC)
    on = queue_status("project", "usage-p", "default", now, fair_share=3, usage=7200.0,
                      adjusted_over_quota_weight=0.25)
    on = on.model_copy(update={"cpu": on.cpu.model_copy(update={"usage": 4_000_000.0})})
    async with harness.service.pool.acquire() as conn:
        assert await repo.apply_queue_status(conn, on)
        assert await repo.apply_queue_status(conn, queue_status(
            "project", "usage-p", "spot", now, allocated=1))
    got = (await admin.get(f"/api/v1/org-unit/projects/{project['id']}")).json()
    default, spot = got["status"]["nodePoolResources"]
    assert default["fairShare"]["gpu"] == 3
    assert default["usage"] == {"gpu": 7200, "cpu": 4000, "memory": None}
    assert default["adjustedOverQuotaWeight"] == {"gpu": 0.25, "cpu": None, "memory": None}
    assert spot.get("usage") is None and spot.get("adjustedOverQuotaWeight") is None
