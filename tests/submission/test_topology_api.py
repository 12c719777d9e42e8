"""Topology-aware placement at the door: a node pool names its network topology (levels of
node label keys), a workload asks for a level of it (`topology.requiredPlacement` /
`preferredPlacement`); what the scheduler could never satisfy is refused naming the field."""

import pytest

from tests.submission.test_workloads import body

pytestmark = pytest.mark.infra

BLOCK, RACK = "topology.fairway.io/block", "topology.fairway.io/rack"
LEVELS = {"levels": [{"nodeLabel": BLOCK}, {"nodeLabel": RACK}]}


async def test_a_node_pool_names_its_topology_and_publishes_it(harness):
    admin = harness.admin
    r = await admin.post("/api/v1/node-pools", json={
        "name": "racks", "labelKey": "fairway.io/pool", "labelValue": "racks",
        "networkTopology": LEVELS})
    assert r.status_code == 201, r.text
    pool = r.json()
    assert pool["networkTopology"] == LEVELS
    r = await admin.put(f"/api/v1/node-pools/{pool['id']}",
                        json={"networkTopology": {"levels": [{"nodeLabel": RACK}]}})
    assert r.status_code == 200 and r.json()["networkTopology"]["levels"] == [
        {"nodeLabel": RACK}]
    r = await admin.put(f"/api/v1/node-pools/{pool['id']}", json={"networkTopology": None})
    assert r.status_code == 200 and r.json()["networkTopology"] is None
    events = await harness.outbox("fairway.org.nodepool.racks")
    assert [e["topologyLevels"] for _, e in events] == [[BLOCK, RACK], [RACK], []]


@pytest.mark.parametrize(("topology", "field"), [
    ({"levels": []}, "networkTopology.levels"),
    ({"levels": [{"nodeLabel": RACK}, {"nodeLabel": RACK}]}, "networkTopology.levels"),
    ({"levels": [{"nodeLabel": "not a label!"}]}, "networkTopology.levels[0].nodeLabel"),
])
async def test_a_bad_topology_is_refused_naming_the_field(harness, topology, field):
    r = await harness.admin.post("/api/v1/node-pools", json={
        "name": "bad", "labelKey": "fairway.io/pool", "labelValue": "bad",
        "networkTopology": topology})
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["details"]] == [field]


async def test_a_workload_asks_a_level_of_its_pools_topology(harness, default_project):
    admin = harness.admin
    pools = (await admin.get("/api/v1/node-pools")).json()["nodePools"]
    default = next(p for p in pools if p["name"] == "default")
    r = await admin.put(f"/api/v1/node-pools/{default['id']}", json={"networkTopology": LEVELS})
    assert r.status_code == 200, r.text
    r = await admin.post("/api/v1/workloads/distributed", json=body(
        default_project["id"], "racked", distributedFramework="PyTorch", numWorkers=3,
        compute={"gpuDevicesRequest": 1},
        topology={"requiredPlacement": BLOCK, "preferredPlacement": RACK}))
    assert r.status_code == 202, r.text
    events = await harness.outbox(f"fairway.workload.submitted.default.{r.json()['workloadId']}")
    assert events[0][1]["spec"]["topology"] == {"requiredPlacement": BLOCK,
                                               "preferredPlacement": RACK}

    r = await admin.post("/api/v1/workloads/distributed", json=body(
        default_project["id"], "no-such-level", distributedFramework="PyTorch", numWorkers=1,
        topology={"requiredPlacement": "topology.fairway.io/zone"}))
    assert r.status_code == 422, r.text
    [detail] = r.json()["details"]
    assert detail["field"] == "spec.topology.requiredPlacement"
    assert "not a topology level" in detail["reason"] and RACK in detail["reason"]

    r = await admin.post("/api/v1/workloads/distributed", json=body(
        default_project["id"], "wider-preference", distributedFramework="PyTorch",
        numWorkers=1, topology={"requiredPlacement": RACK, "preferredPlacement": BLOCK}))
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["details"]] == ["spec.topology.preferredPlacement"]

    r = await admin.post("/api/v1/workloads/trainings", json=body(
        default_project["id"], "bad-key", topology={"preferredPlacement": "a b"}))
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["details"]] == ["spec.topology.preferredPlacement"]
