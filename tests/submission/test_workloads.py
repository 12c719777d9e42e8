"""The four workload types: accepted, persisted and published; every bad field named; the list
with filters, sorting and paging; pods, phase history; suspend, resume, delete and batch."""

import pytest

pytestmark = pytest.mark.infra


def body(project_id: str, name: str, **spec) -> dict:
    return {"name": name, "projectId": project_id, "spec": {"image": "busybox", **spec}}


@pytest.mark.parametrize(("plural", "wtype", "spec", "pods"), [
    ("workspaces", "workspace", {"compute": {"gpuDevicesRequest": 1}}, 1),
    ("trainings", "training", {"completions": 2, "parallelism": 1,
                               "environmentVariables": [{"name": "A", "value": "1"}]}, 1),
    ("distributed", "distributed", {"distributedFramework": "PyTorch", "numWorkers": 3,
                                    "minReplicas": 2, "maxReplicas": 3,
                                    "compute": {"gpuDevicesRequest": 2}}, 4),
    ("inferences", "inference", {"servingPort": 8000,
                                 "autoscaling": {"minReplicas": 2, "maxReplicas": 4,
                                                 "metric": "concurrency",
                                                 "metricThreshold": 10}}, 2),
])
async def test_each_type_is_accepted_persisted_and_published(harness, default_project, plural,
                                                             wtype, spec, pods):
    r = await harness.admin.post(f"/api/v1/workloads/{plural}",
                                 json=body(default_project["id"], f"w-{wtype}", **spec))
    assert r.status_code == 202, r.text
    w = r.json()
    assert w["type"] == wtype and w["requestedPods"] == pods and w["phase"] == "Creating"
    assert w["desiredPhase"] == "Running" and w["createdBy"] == "admin"
    got = (await harness.admin.get(f"/api/v1/workloads/{w['workloadId']}")).json()
    assert got["spec"] == w["spec"]
    events = await harness.outbox(f"fairway.workload.submitted.default.{w['workloadId']}")
    assert events[0][1]["spec"]["pods"] == pods
    assert events[0][1]["workloadType"] == wtype


async def test_problems_are_listed_by_field(harness, default_project):
    pid = default_project["id"]
    r = await harness.admin.post("/api/v1/workloads/trainings", json=body(pid, "bad", compute={
        "gpuRequestType": "memory", "gpuPortionRequest": 0.5, "gpuPortionLimit": 0.25,
        "cpuCoreRequest": 2, "cpuCoreLimit": 1, "cpuMemoryRequest": "2Gi",
        "cpuMemoryLimit": "1Gi"}, nodePools=["default", "nowhere"]))
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["details"]}
    assert fields == {"spec.compute.gpuRequestType", "spec.compute.gpuMemoryRequest",
                      "spec.compute.gpuPortionLimit", "spec.compute.cpuCoreLimit",
                      "spec.compute.cpuMemoryLimit", "spec.nodePools[1]"}
    r = await harness.admin.post("/api/v1/workloads/distributed", json=body(pid, "nowork"))
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["details"]] == ["spec.numWorkers"]
    r = await harness.admin.post("/api/v1/workloads/trainings", json=body(
        pid, "Bad_Name", compute={"gpuPortionRequest": 1.5, "gpuDevicesRequest": -1},
        unknown=True))
    fields = {d["field"] for d in r.json()["details"]}
    assert r.status_code == 422
    assert fields == {"name", "spec.compute.gpuPortionRequest", "spec.compute.gpuDevicesRequest",
                      "spec.unknown"}
    r = await harness.admin.post("/api/v1/workloads/inferences", json=body(
        pid, "inf", autoscaling={"minReplicas": 3, "maxReplicas": 2}, servingPort=70000))
    assert r.status_code == 422
    # a bare number is the container port: its problem is named there
    assert {d["field"] for d in r.json()["details"]} == {"spec.servingPort.container"}
    r = await harness.admin.post("/api/v1/workloads/inferences", json=body(
        pid, "inf", autoscaling={"minReplicas": 3, "maxReplicas": 2}))
    assert [d["field"] for d in r.json()["details"]] == ["spec.autoscaling.maxReplicas"]
    # policy's word comes back the same way
    r = await harness.admin.post("/api/v1/workloads/trainings",
                                 json=body(pid, "prio", priorityClass="nope"))
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "spec.priorityClass"
    r = await harness.admin.post("/api/v1/workloads/trainings", json=body("999", "x"))
    assert r.status_code == 404 and r.json()["details"][0]["field"] == "projectId"


SERVING_PROBLEMS = [
    # servingPort / autoscaling as submitted,                          the field named
    ({"servingPort": {"container": 0}},                               "spec.servingPort.container"),
    ({"servingPort": {"container": 8000, "protocol": "udp"}},         "spec.servingPort.protocol"),
    ({"servingPort": {"container": 8000, "authorizationType": "vip"}},
     "spec.servingPort.authorizationType"),
    ({"servingPort": {"container": 8000, "authorizationType": "authorizedUsersOrGroups"}},
     "spec.servingPort.authorizedUsers"),
    ({"servingPort": {"container": 8000, "authorizedGroups": ["ml"]}},
     "spec.servingPort.authorizationType"),
    ({"servingPort": {"protocol": "grpc"}},                           "spec.servingPort.container"),
    ({"autoscaling": {"minReplicas": 1, "maxReplicas": 3}},           "spec.autoscaling.metric"),
    ({"autoscaling": {"minReplicas": 1, "maxReplicas": 3, "metric": "latency"}},
     "spec.autoscaling.metricThreshold"),
    ({"autoscaling": {"minReplicas": 0, "maxReplicas": 3, "metric": "latency",
                      "metricThreshold": 0.5}},                  "spec.autoscaling.minReplicas"),
    ({"autoscaling": {"minReplicas": 1, "maxReplicas": 3, "metric": "9 lives",
                      "metricThreshold": 1}},                         "spec.autoscaling.metric"),
    ({"autoscaling": {"minReplicas": 2, "scaleToZeroRetentionSeconds": 60}},
     "spec.autoscaling.scaleToZeroRetentionSeconds"),
    ({"autoscaling": {"minReplicas": 1, "initializationTimeoutSeconds": 0}},
     "spec.autoscaling.initializationTimeoutSeconds"),
]


@pytest.mark.parametrize(("spec", "field"), SERVING_PROBLEMS)
async def test_serving_port_and_autoscaling_problems_name_the_field(harness, default_project,
                                                                    spec, field):
    r = await harness.admin.post("/api/v1/workloads/inferences",
                                 json=body(default_project["id"], "inf", **spec))

    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["details"]] == [field]


async def test_serving_port_object_and_autoscaling_are_kept_as_run_ai_shapes_them(
        harness, default_project):
    serving = {"container": 50051, "protocol": "grpc",
               "authorizationType": "authorizedUsersOrGroups", "authorizedGroups": ["ml"],
               "clusterLocalAccessOnly": False}
    autoscaling = {"minReplicas": 0, "maxReplicas": 4, "metric": "throughput",
                   "metricThreshold": 20, "initializationTimeoutSeconds": 120,
                   "scaleToZeroRetentionSeconds": 600}
    r = await harness.admin.post("/api/v1/workloads/inferences", json=body(
        default_project["id"], "grpc-llm", servingPort=serving, autoscaling=autoscaling))

    assert r.status_code == 202, r.text
    w = r.json()
    assert w["submittedSpec"]["servingPort"] == serving
    assert w["spec"]["servingPort"] == {**serving, "authorizedUsers": []}  # as it runs
    assert w["spec"]["autoscaling"] == autoscaling
    [(_, event)] = await harness.outbox(f"fairway.workload.submitted.default.{w['workloadId']}")
    assert event["spec"]["servingPort"]["protocol"] == "grpc"
    assert event["spec"]["autoscaling"]["scaleToZeroRetentionSeconds"] == 600
    assert (event["spec"]["pods"], event["spec"]["minPods"]) == (1, 1)  # starts with one


async def test_list_filters_sorts_and_pages(harness, default_project):
    pid = default_project["id"]
    for i in range(3):
        r = await harness.admin.post("/api/v1/workloads/trainings",
                                     json=body(pid, f"page-{i}"))
        assert r.status_code == 202
    r = await harness.admin.get("/api/v1/workloads", params={
        "filterBy": "name=@page-,type==training", "sortBy": "name", "sortOrder": "asc",
        "offset": 1, "limit": 1})
    data = r.json()
    assert data["totalCount"] == 3 and [w["name"] for w in data["workloads"]] == ["page-1"]
    assert data["next"] == 2
    r = await harness.admin.get("/api/v1/workloads", params={"filterBy": "color==red"})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "filterBy"
    r = await harness.admin.get("/api/v1/workloads", params={"sortBy": "color"})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "sortBy"
    r = await harness.admin.get("/api/v1/workloads", params={"limit": 501})
    assert r.status_code == 422


async def test_actions_record_desired_phase_and_publish(harness, default_project):
    admin = harness.admin
    w = (await admin.post("/api/v1/workloads/trainings",
                          json=body(default_project["id"], "act"))).json()
    wid = w["workloadId"]
    r = await admin.post(f"/api/v1/workloads/trainings/{wid}/suspend")
    assert r.status_code == 202 and r.json()["desiredPhase"] == "Stopped"
    r = await admin.post(f"/api/v1/workloads/workspaces/{wid}/resume")
    assert r.status_code == 404  # not a workspace
    r = await admin.post(f"/api/v1/workloads/trainings/{wid}/resume")
    assert r.status_code == 202 and r.json()["desiredPhase"] == "Running"
    assert (await admin.get(f"/api/v1/workloads/{wid}/pods")).json() == {"pods": []}
    assert (await admin.get(f"/api/v1/workloads/{wid}/events")).json() == {"events": []}
    r = await admin.post("/api/v1/workloads/batch", json={
        "ids": [wid, "00000000-0000-0000-0000-000000000000"], "action": "delete"})
    assert r.status_code == 202
    assert [x["code"] for x in r.json()["results"]] == [202, 404]
    assert (await admin.get(f"/api/v1/workloads/{wid}")).json()["desiredPhase"] == "Deleted"
    r = await admin.post(f"/api/v1/workloads/trainings/{wid}/resume")
    assert r.status_code == 409
    actions = await harness.outbox("fairway.workload.action.")
    mine = [(s.split(".")[3], e["requestedBy"]) for s, e in actions if e["workloadId"] == wid]
    assert mine == [("stop", "admin"), ("resume", "admin"), ("delete", "admin")]
    r = await admin.post("/api/v1/workloads/batch", json={"ids": [wid], "action": "explode"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "action"


async def test_nodes_show_inventory_and_placed_gpus(harness, default_project):
    from datetime import UTC, datetime

    from fairway_contracts.events import NodeInventory

    now = datetime.now(UTC)
    inventory = [NodeInventory(name="n1", node_pool="default", ready=True, gpus=2,
                               gpu_product="H100", gpu_memory_mib=81920, observed_at=now)]

    async def read():
        return inventory

    harness.service.peers.read_inventory = read
    nodes = (await harness.admin.get("/api/v1/nodes")).json()["nodes"]
    empty = {"memoryMib": 81920, "pods": [], "memoryRequestedMib": 0, "memoryInUseMib": 0,
             "memorySwappedMib": 0, "utilizationPercent": None}
    assert nodes == [{"name": "n1", "nodePool": "default", "ready": True, "gpus": 2,
                      "gpuProduct": "H100", "gpuMemoryMib": 81920, "allocatedGpus": 0,
                      "cpuMillis": 0, "memoryMib": 0,
                      "devices": [{"index": 0, **empty}, {"index": 1, **empty}],
                      "gpuSwap": False, "swapHostMemoryUsedMib": 0}]
    nobody = await harness.user("no-rules")
    assert (await nobody.get("/api/v1/nodes")).status_code == 403


@pytest.mark.parametrize("odd", ["١٢٣٤٥٦٧٨-1234-1234-1234-123456789012",
                                 "{12345678-1234-1234-1234-123456789012}",
                                 "urn:uuid:12345678-1234-1234-1234-123456789012",
                                 "12345678123412341234123456789012", "²"])
async def test_a_workload_id_in_any_other_form_is_not_found(harness, odd):
    r = await harness.admin.get(f"/api/v1/workloads/{odd}")
    assert r.status_code == 404, r.text


async def test_a_submission_is_announced_with_its_row_and_a_repeated_name_with_neither(
        harness, default_project):
    admin = harness.admin
    r = await admin.post("/api/v1/workloads/trainings",
                         json=body(default_project["id"], "announced-once"))
    assert r.status_code == 202, r.text
    wid = r.json()["workloadId"]
    r = await admin.post("/api/v1/workloads/trainings",
                         json=body(default_project["id"], "announced-once"))
    assert r.status_code == 409 and "already exists" in r.json()["message"]
    submitted = [e for _, e in await harness.outbox("fairway.workload.submitted.")
                 if e["name"] == "announced-once"]
    assert [e["workloadId"] for e in submitted] == [wid]
    async with harness.service.pool.acquire() as conn:
        headers = await conn.fetchval("SELECT headers FROM outbox WHERE msg_id = $1",
                                      f"submitted:{wid}")
    assert isinstance(headers, dict)


FRACTIONS = [
    # compute submitted,                      effective compute (the event's), requested view
    ({"gpuPortionRequest": 0.5},
     {"gpuRequestType": "portion", "gpuPortionRequest": 0.5, "gpuDevicesRequest": 1}, 0.5),
    ({"gpuPortionRequest": 0.25, "gpuPortionLimit": 1, "gpuDevicesRequest": 2},
     {"gpuRequestType": "portion", "gpuPortionRequest": 0.25, "gpuPortionLimit": 1.0,
      "gpuDevicesRequest": 2}, 0.5),
    ({"gpuRequestType": "portion", "gpuPortionRequest": 1},
     {"gpuRequestType": "portion", "gpuPortionRequest": 1.0, "gpuDevicesRequest": 1}, 1.0),
    ({"gpuMemoryRequest": "10Gi"},
     {"gpuRequestType": "memory", "gpuMemoryRequest": "10Gi", "gpuDevicesRequest": 1}, 0),
    ({"gpuRequestType": "memory", "gpuMemoryRequest": "10Gi", "gpuMemoryLimit": "20Gi"},
     {"gpuRequestType": "memory", "gpuMemoryRequest": "10Gi", "gpuMemoryLimit": "20Gi"}, 0),
]


@pytest.mark.parametrize(("case", "compute", "effective", "gpus"),
                         [(i, *row) for i, row in enumerate(FRACTIONS)])
async def test_gpu_fractions_are_accepted_in_normal_form(harness, default_project, case,
                                                         compute, effective, gpus):
    r = await harness.admin.post("/api/v1/workloads/trainings",
                                 json=body(default_project["id"], f"frac-{case}",
                                           compute=compute))
    assert r.status_code == 202, r.text
    w = r.json()
    assert w["requestedResources"]["gpu"] == gpus
    assert w["requestedResources"]["gpuRequestType"] == effective["gpuRequestType"]
    events = await harness.outbox(f"fairway.workload.submitted.default.{w['workloadId']}")
    stored = events[0][1]["spec"]["compute"]
    assert {key: stored[key] for key in effective} == effective


BAD_FRACTIONS = [
    # compute,                                                   field, words in the reason
    ({"gpuPortionRequest": 0.5, "gpuMemoryRequest": "1Gi"}, "gpuMemoryRequest", "not both"),
    ({"gpuPortionRequest": 0}, "gpuPortionRequest", ""),
    ({"gpuPortionRequest": 1.01}, "gpuPortionRequest", ""),
    ({"gpuPortionRequest": 0.5, "gpuPortionLimit": 0.4}, "gpuPortionLimit", "at least"),
    ({"gpuPortionLimit": 0.4}, "gpuPortionLimit", "needs a gpuPortionRequest"),
    ({"gpuMemoryLimit": "10Gi"}, "gpuMemoryLimit", "needs a gpuMemoryRequest"),
    ({"gpuMemoryRequest": "10Gi", "gpuMemoryLimit": "5Gi"}, "gpuMemoryLimit", "at least"),
    ({"gpuMemoryRequest": "10Gi", "gpuDevicesRequest": 2}, "gpuDevicesRequest", "one device"),
    ({"gpuPortionRequest": 0.5, "gpuDevicesRequest": 0}, "gpuDevicesRequest", "at least 1"),
    ({"gpuRequestType": "portion"}, "gpuPortionRequest", "required"),
    ({"gpuRequestType": "memory", "gpuPortionRequest": 0.5}, "gpuRequestType", "use 'portion'"),
    ({"gpuMemoryRequest": "ten gigs"}, "gpuMemoryRequest", ""),
]


@pytest.mark.parametrize(("compute", "field", "words"), BAD_FRACTIONS)
async def test_bad_gpu_fractions_are_refused_naming_the_field(harness, default_project,
                                                              compute, field, words):
    r = await harness.admin.post("/api/v1/workloads/trainings",
                                 json=body(default_project["id"], "frac", compute=compute))
    assert r.status_code == 422, r.text
    details = {d["field"]: d["reason"] for d in r.json()["details"]}
    assert f"spec.compute.{field}" in details, details
    assert words in details[f"spec.compute.{field}"]


@pytest.mark.parametrize(("spec", "fields"), [
    ({"numWorkers": 2, "masterSpecSameAsWorker": False}, ["spec.masterSpec"]),
    ({"numWorkers": 2, "masterSpec": {"image": "launcher:1"}}, ["spec.masterSpec"]),
    ({"numWorkers": 4, "maxReplicas": 3}, ["spec.numWorkers"]),
    ({"numWorkers": 2, "minReplicas": 3}, ["spec.minReplicas"]),
    ({"numWorkers": 2, "minReplicas": 2, "maxReplicas": 1}, ["spec.maxReplicas"]),
    ({"numWorkers": 2, "compute": {"gpuDevicesRequest": 1}, "masterSpecSameAsWorker": False,
      "masterSpec": {"compute": {"gpuPortionRequest": 0.5}}},
     ["spec.masterSpec.compute.gpuDevicesRequest"]),
    # what Kubernetes would refuse of a master's own request
    ({"numWorkers": 2, "masterSpecSameAsWorker": False,
      "masterSpec": {"compute": {"cpuMemoryRequest": "lots"}}},
     ["spec.masterSpec.compute.cpuMemoryRequest"]),
    ({"numWorkers": 2, "masterSpecSameAsWorker": False, "masterSpec": {"image": "bad image"}},
     ["spec.masterSpec.image"]),
])
async def test_distributed_master_and_elastic_bounds_are_refused_naming_the_field(
        harness, default_project, spec, fields):
    r = await harness.admin.post("/api/v1/workloads/distributed",
                                 json=body(default_project["id"], "dist-bad", **spec))

    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["details"]] == fields
    assert all(d["reason"] for d in r.json()["details"])


async def test_a_master_larger_or_smaller_than_a_worker_is_accepted_at_its_own_size(
        harness, default_project):
    # the scheduler books the master at its own size: a launcher of no GPU for 4-GPU
    # workers, or a master asking for more than a worker
    for name, master, worker in (
            ("launcher", {"cpuCoreRequest": 0.5}, {"gpuDevicesRequest": 4}),
            ("big-master", {"gpuDevicesRequest": 2, "cpuCoreRequest": 4},
             {"gpuDevicesRequest": 1, "cpuCoreRequest": 1})):
        r = await harness.admin.post("/api/v1/workloads/distributed", json=body(
            default_project["id"], name, distributedFramework="MPI", numWorkers=2,
            compute=worker, masterSpecSameAsWorker=False, masterSpec={"compute": master}))

        assert r.status_code == 202, r.text
        topic = f"fairway.workload.submitted.default.{r.json()['workloadId']}"
        spec = (await harness.outbox(topic))[0][1]["spec"]
        assert {k: v for k, v in spec["masterSpec"]["compute"].items()
                if k in master} == master


async def test_a_master_spec_and_elastic_bounds_reach_the_effective_spec(harness,
                                                                          default_project):
    r = await harness.admin.post("/api/v1/workloads/distributed", json=body(
        default_project["id"], "dist-master", distributedFramework="MPI", numWorkers=3,
        minReplicas=1, maxReplicas=4, compute={"gpuDevicesRequest": 1, "cpuCoreRequest": 2},
        masterSpecSameAsWorker=False,
        masterSpec={"image": "mpi-launcher:1", "command": "mpirun python train.py",
                    "compute": {"cpuCoreRequest": 1}}))

    assert r.status_code == 202, r.text
    events = await harness.outbox(f"fairway.workload.submitted.default.{r.json()['workloadId']}")
    spec = events[0][1]["spec"]
    assert (spec["pods"], spec["minPods"], spec["numWorkers"]) == (4, 2, 3)
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 4)
    assert spec["masterSpec"]["image"] == "mpi-launcher:1"
    assert spec["masterSpec"]["compute"]["cpuCoreRequest"] == 1


@pytest.mark.parametrize("master", [{"image": "mpi-launcher:1"},
                                    {"image": "mpi-launcher:1", "compute": {}}])
async def test_a_master_spec_that_names_no_compute_runs_at_a_workers_size(
        harness, default_project, master):
    r = await harness.admin.post("/api/v1/workloads/distributed", json=body(
        default_project["id"], f"dist-same-size-{len(master)}", distributedFramework="MPI",
        numWorkers=2, compute={"gpuDevicesRequest": 2}, masterSpecSameAsWorker=False,
        masterSpec=master))

    assert r.status_code == 202, r.text
    events = await harness.outbox(f"fairway.workload.submitted.default.{r.json()['workloadId']}")
    spec = events[0][1]["spec"]
    assert spec["masterSpec"]["image"] == "mpi-launcher:1"
    assert spec["masterSpec"]["compute"] is None  # the workers' compute: lifecycle and the
    assert spec["compute"]["gpuDevicesRequest"] == 2  # scheduler size the master like them


async def test_the_submit_form_says_when_the_projects_policy_could_not_be_read(
        harness, default_project):
    """Nobody answers policy's reads here (the stand-in evaluates only): the console's form
    says so rather than silently showing no defaults or limits."""
    from fairway_submission.console.session import COOKIE

    console = harness.client()
    console.cookies.set(COOKIE, harness.admin_token)
    page = await console.get("/submit", params={"type": "trainings",
                                                "projectId": default_project["id"]})
    assert page.status_code == 200
    assert 'id="policy-problem"' in page.text
    assert "the policy service did not answer" in page.text
