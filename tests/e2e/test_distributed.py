"""Distributed training as the Kubeflow training operator and the MPI operator run it, end to
end: submitted through the API and policy, placed by the scheduler, made by lifecycle in
kubesim, read back through the Kubernetes API (issue 19).

Every framework's pods resolve their peers through the workload's headless Service (each pod
with its hostname and the Service as subdomain, listed in the Service's Endpoints) and carry
the environment the framework's launcher reads; MPI's launcher mounts the hostfile from a
ConfigMap; a master may have its own image; an elastic job starts with its minimum and grows
when room appears."""

import json
import time
import uuid

import pytest
from kubernetes import client, config

from tests.e2e.conftest import create, ensure_simulated_pools, submit, wait_deleted

pytestmark = pytest.mark.e2e

BASE = {"priorityClass": "train", "backoffLimit": 0}
CPU_ONLY = {"compute": {"gpuDevicesRequest": 0, "cpuCoreRequest": 1}}


@pytest.fixture(scope="module")
def project(api) -> dict:
    ensure_simulated_pools(api)
    return create(api, "/api/v1/org-unit/projects", {"name": f"dist-{uuid.uuid4().hex[:6]}"})


@pytest.fixture(scope="module")
def kube(stack) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=stack.kubeconfig))


@pytest.fixture
def run(api, project, held):
    """Submit a distributed workload into the module's project (deleted when the test ends);
    its id."""

    def submit_distributed(name: str, **spec) -> str:
        wid = submit(api, "distributed", project["id"], name, None, **{**BASE, **spec})
        held.append(("distributed", wid))
        return wid

    return submit_distributed


def pods_of(kube: client.CoreV1Api, namespace: str, wid: str) -> list:
    """The workload's pods in rank order (master first, then the workers by index)."""
    pods = kube.list_namespaced_pod(namespace,
                                    label_selector=f"fairway.io/workload-id={wid}").items
    return sorted(pods, key=lambda p: (p.metadata.labels["fairway.io/role"] != "master",
                                       int(p.metadata.name.rsplit("-", 1)[1])))


def env(pod) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env or []}


def endpoint_hostnames(kube: client.CoreV1Api, namespace: str, service: str) -> set[str]:
    endpoints = kube.read_namespaced_endpoints(service, namespace)
    return {a.hostname for s in endpoints.subsets or []
            for a in (s.addresses or []) + (s.not_ready_addresses or [])}


def eventually(check, timeout: float = 30.0):
    """`check()` once it stops raising AssertionError (its value), or its last error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def host(pod, namespace: str) -> str:
    return f"{pod.spec.hostname}.{pod.spec.subdomain}.{namespace}.svc.cluster.local"


def check_peers_resolve(kube, namespace: str, wid: str, workers: int) -> tuple[list, object]:
    """The pods (master first) and the headless Service that makes their names resolve."""
    pods = pods_of(kube, namespace, wid)
    assert len(pods) == 1 + workers
    service = kube.read_namespaced_service(pods[0].spec.subdomain, namespace)
    assert service.spec.cluster_ip == "None"
    assert service.spec.publish_not_ready_addresses is True
    assert service.spec.selector["fairway.io/workload-id"] == wid
    for pod in pods:
        assert pod.spec.hostname == pod.metadata.name
        assert pod.spec.subdomain == service.metadata.name
    assert eventually(lambda: _all_listed(kube, namespace, service.metadata.name, pods))
    return pods, service


def _all_listed(kube, namespace: str, service: str, pods: list) -> bool:
    assert endpoint_hostnames(kube, namespace, service) == {p.metadata.name for p in pods}
    return True


FRAMEWORKS = ["PyTorch", "TF", "XGBoost", "JAX"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_framework_s_pods_find_their_peers_by_resolvable_names(
        framework, run, phases, kube, project):
    namespace = f"fairway-{project['name']}"
    wid = run(f"peers-{framework.lower()}", distributedFramework=framework, numWorkers=2,
              **CPU_ONLY)
    events = await phases.read(wid, until={"Running", "Failed"})
    assert events[-1]["phase"] == "Running", events[-1]

    pods, service = check_peers_resolve(kube, namespace, wid, workers=2)
    envs = [env(p) for p in pods]
    master = host(pods[0], namespace)
    if framework == "PyTorch":
        assert {e["MASTER_ADDR"] for e in envs} == {master}
        assert [e["RANK"] for e in envs] == ["0", "1", "2"]
        assert {e["WORLD_SIZE"] for e in envs} == {"3"}
        assert [p.port for p in service.spec.ports] == [int(envs[0]["MASTER_PORT"])]
    elif framework == "TF":
        configs = [json.loads(e["TF_CONFIG"]) for e in envs]
        assert configs[0]["cluster"]["chief"] == [f"{master}:2222"]
        assert configs[0]["cluster"]["worker"] == [f"{host(p, namespace)}:2222"
                                                   for p in pods[1:]]
        assert [c["task"]["type"] for c in configs] == ["chief", "worker", "worker"]
    elif framework == "XGBoost":
        assert {e["DMLC_TRACKER_URI"] for e in envs} == {master}
        assert [e["DMLC_ROLE"] for e in envs] == ["tracker", "worker", "worker"]
        assert {e["DMLC_NUM_WORKER"] for e in envs} == {"2"}
    else:  # JAX
        assert {e["JAX_COORDINATOR_ADDRESS"] for e in envs} == {f"{master}:1234"}
        assert [e["JAX_PROCESS_ID"] for e in envs] == ["0", "1", "2"]
        assert {e["JAX_NUM_PROCESSES"] for e in envs} == {"3"}


async def test_an_mpi_launcher_with_its_own_image_mounts_the_workers_hostfile(
        api, run, phases, kube, project):
    namespace = f"fairway-{project['name']}"
    wid = run("mpi", distributedFramework="MPI", numWorkers=2,
              compute={"gpuDevicesRequest": 2, "cpuCoreRequest": 2},
              masterSpecSameAsWorker=False,
              masterSpec={"image": "mpi-launcher:1", "command": "mpirun python train.py",
                          "compute": {"cpuCoreRequest": 1}})
    events = await phases.read(wid, until={"Running", "Failed"})
    assert events[-1]["phase"] == "Running", events[-1]

    pods, service = check_peers_resolve(kube, namespace, wid, workers=2)
    launcher, workers = pods[0], pods[1:]
    assert launcher.spec.containers[0].image == "mpi-launcher:1"
    assert launcher.spec.containers[0].command == ["mpirun", "python", "train.py"]
    assert {w.spec.containers[0].image for w in workers} == {"busybox"}
    assert "nvidia.com/gpu" not in (launcher.spec.containers[0].resources.requests or {})
    assert workers[0].spec.containers[0].resources.limits["nvidia.com/gpu"] == "2"
    # the hostfile: every worker by its resolvable name, one slot per GPU
    hostfile_map = launcher.spec.volumes[0].config_map.name
    hostfile = kube.read_namespaced_config_map(hostfile_map, namespace).data["hostfile"]
    assert hostfile == "".join(f"{host(w, namespace)} slots=2\n" for w in workers)
    [mount] = launcher.spec.containers[0].volume_mounts
    assert (mount.name, mount.mount_path) == (launcher.spec.volumes[0].name, "/etc/mpi")
    assert env(launcher)["OMPI_MCA_orte_default_hostfile"] == "/etc/mpi/hostfile"

    # deleted with the workload
    assert api.delete(f"/api/v1/workloads/distributed/{wid}").status_code == 202
    wait_deleted(api, wid)

    def objects_gone() -> bool:
        for read, name in ((kube.read_namespaced_service, service.metadata.name),
                           (kube.read_namespaced_config_map, hostfile_map)):
            try:
                read(name, namespace)
            except client.ApiException as exc:
                assert exc.status == 404
            else:
                raise AssertionError(f"{name} is still there")
        return True
    assert eventually(objects_gone)


async def test_an_elastic_pytorch_job_grows_when_room_appears_and_shrinks_first(
        api, held, kube, phases):
    # A project held to 2 GPUs: the master and one worker (the minimum) fit; the two other
    # workers wait until the limit is raised.
    ensure_simulated_pools(api)
    name = f"elastic-{uuid.uuid4().hex[:6]}"
    quota = {"nodePool": {"name": "a100"}, "gpu": {"deserved": 2, "limit": 2}}
    project = create(api, "/api/v1/org-unit/projects", {"name": name, "resources": [quota]})
    wid = submit(api, "distributed", project["id"], "grow", None, **BASE,
                 nodePools=["a100"], distributedFramework="PyTorch", numWorkers=3,
                 minReplicas=1, maxReplicas=3)
    held.append(("distributed", wid))
    namespace = f"fairway-{name}"

    def placed(count: int) -> list:
        pods = pods_of(kube, namespace, wid)
        assert len(pods) == 4  # every pod is made; those beyond the minimum wait
        bound = [p for p in pods if p.spec.node_name]
        assert len(bound) == count, [(p.metadata.name, p.spec.node_name) for p in pods]
        return pods

    pods = eventually(lambda: placed(2), timeout=60)
    assert pods[0].spec.node_name  # the master is in the minimum
    events = await phases.read(wid, until={"Running", "Failed"})
    assert events[-1]["phase"] == "Running", events[-1]  # its minimum runs
    assert env(pods[1])["PET_NNODES"] == "2:4"
    assert env(pods[1])["PET_RDZV_ENDPOINT"] == f"{host(pods[0], namespace)}:23456"
    time.sleep(2)  # room for no more: still two
    placed(2)

    response = api.put(f"/api/v1/org-unit/projects/{project['id']}", json={
        "resources": [{**quota, "gpu": {"deserved": 4, "limit": 4}}]})
    assert response.status_code == 200, response.text
    pods = eventually(lambda: placed(4), timeout=60)
    check_peers_resolve(kube, namespace, wid, workers=3)

    # A more urgent training of the same project needs two GPUs: the workers above the
    # minimum make room, the master and its first worker keep running; the two are made
    # again and wait for room.
    urgent = submit(api, "trainings", project["id"], "urgent", None,
                    **{**BASE, "priorityClass": "high"}, preemptibility="preemptible",
                    nodePools=["a100"], compute={"gpuDevicesRequest": 2})
    held.append(("trainings", urgent))
    events = await phases.read(urgent, until={"Running", "Failed"})
    assert events[-1]["phase"] == "Running", events[-1]
    pods = eventually(lambda: placed(2), timeout=60)
    kept = {p.metadata.name for p in pods if p.spec.node_name}
    assert kept == {p.metadata.name for p in pods[:2]}  # the master and worker 0 stayed
    phase = api.get(f"/api/v1/workloads/{wid}").json()["phase"]
    assert phase in ("Running", "Degraded"), phase  # still runs on its minimum


async def test_an_mpi_launcher_without_gpus_runs_where_its_workers_gpus_alone_fit(
        api, held, kube, phases):
    # A project held to exactly its workers' GPUs (2 workers x 2): the launcher asks for no
    # GPU and is booked at its own size, so the job runs; booked at a worker's size it would
    # need 6 GPUs and wait over the limit.
    ensure_simulated_pools(api)
    name = f"launcher-{uuid.uuid4().hex[:6]}"
    quota = {"nodePool": {"name": "a100"}, "gpu": {"deserved": 4, "limit": 4}}
    project = create(api, "/api/v1/org-unit/projects", {"name": name, "resources": [quota]})
    wid = submit(api, "distributed", project["id"], "mpi", None, **BASE,
                 nodePools=["a100"], distributedFramework="MPI", numWorkers=2,
                 compute={"gpuDevicesRequest": 2, "cpuCoreRequest": 1},
                 masterSpecSameAsWorker=False,
                 masterSpec={"command": "mpirun python train.py",
                             "compute": {"cpuCoreRequest": 0.5}})
    held.append(("distributed", wid))
    events = await phases.read(wid, until={"Running", "Failed"})
    assert events[-1]["phase"] == "Running", events[-1]

    pods = pods_of(kube, f"fairway-{name}", wid)
    assert all(p.spec.node_name for p in pods), [(p.metadata.name, p.spec.node_name)
                                                 for p in pods]
    launcher = pods[0].spec.containers[0].resources
    assert "nvidia.com/gpu" not in (launcher.limits or {})
    assert launcher.requests["cpu"] == "0.5"

    def booked() -> dict:
        # the scheduler's queue status reaches the project: 4 GPUs and 2.5 cores held
        status = api.get(f"/api/v1/org-unit/projects/{project['id']}").json()["status"]
        [a100] = [r for r in status["nodePoolResources"] if r["nodePool"]["name"] == "a100"]
        assert (a100["allocated"]["gpu"], a100["allocated"]["cpu"]) == (4, 2.5), a100
        return a100
    eventually(booked)
    view = api.get(f"/api/v1/workloads/{wid}").json()
    assert view["allocatedResources"]["gpu"] == 4 and view["requestedResources"]["gpu"] == 4
