"""Pods built for each workload type, with the environment each framework expects."""

import json

import pytest

from fairway_contracts import EffectiveSpec, PodRole, WorkloadType
from fairway_lifecycle.core.pods import build_pods, pod_name, service_name


def spec(**extra) -> EffectiveSpec:
    return EffectiveSpec.model_validate({"image": "pytorch:24", "priorityClass": "train",
                                         "preemptible": True, "backoffLimit": 6,
                                         "compute": {"gpuDevicesRequest": 2}, **extra})


def build(kind: WorkloadType, **extra):
    return build_pods(workload_id="0123456789ab", name="bert", project="team-a",
                      workload_type=kind, spec=spec(**extra), attempt=1,
                      namespace="fairway-team-a")


def env(pod) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}


def test_a_training_pod_carries_labels_gpus_and_the_scheduler_name():
    [pod] = build(WorkloadType.TRAINING, annotations=[{"name": "a", "value": "b"}])
    assert pod["spec"]["schedulerName"] == "fairway"
    assert pod["metadata"]["labels"]["fairway.io/workload-id"] == "0123456789ab"
    assert pod["metadata"]["labels"]["fairway.io/role"] == "main"
    assert pod["metadata"]["annotations"]["a"] == "b"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert len(pod["metadata"]["name"]) <= 63


def test_parallel_trainings_get_one_pod_per_parallel_slot():
    pods = build(WorkloadType.TRAINING, pods=3, parallelism=3, completions=6)
    assert len({p["metadata"]["name"] for p in pods}) == 3


HOST = "{}.bert-01234567.fairway-team-a.svc.cluster.local"


def names(pods) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


@pytest.mark.parametrize("framework", ["PyTorch", "TF", "MPI", "XGBoost", "JAX"])
def test_every_pod_of_a_distributed_workload_resolves_under_its_service(framework):
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework=framework,
                 numWorkers=2)

    assert [p["metadata"]["labels"]["fairway.io/role"] for p in pods] == [
        "master", "worker", "worker"]
    assert [p["spec"]["hostname"] for p in pods] == names(pods)
    assert {p["spec"]["subdomain"] for p in pods} == {"bert-01234567"}


def test_pytorch_ranks_and_rendezvous_name_the_master_by_its_resolvable_name():
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework="PyTorch",
                 numWorkers=2)
    envs = [env(p) for p in pods]
    master = HOST.format(names(pods)[0])

    assert [e["RANK"] for e in envs] == ["0", "1", "2"]
    assert [e["PET_NODE_RANK"] for e in envs] == ["0", "1", "2"]
    assert {e["WORLD_SIZE"] for e in envs} == {e["PET_NNODES"] for e in envs} == {"3"}
    assert {e["MASTER_ADDR"] for e in envs} == {e["PET_MASTER_ADDR"] for e in envs} == {master}
    assert {e["MASTER_PORT"] for e in envs} == {"23456"}
    assert "PET_RDZV_ENDPOINT" not in envs[0]


def test_an_elastic_pytorch_job_tells_torchrun_its_node_range_and_rendezvous():
    pods = build(WorkloadType.DISTRIBUTED, pods=4, minPods=2, distributedFramework="PyTorch",
                 numWorkers=3, minReplicas=1, maxReplicas=5)
    e = env(pods[2])

    assert len(pods) == 4  # the master and numWorkers workers; the rest join when placed
    assert e["PET_NNODES"] == "2:6"  # the master and 1..5 workers
    assert e["PET_RDZV_BACKEND"] == "c10d"
    assert e["PET_RDZV_ENDPOINT"] == HOST.format(names(pods)[0]) + ":23456"
    assert e["PET_RDZV_ID"] == "0123456789ab"


def test_tf_config_names_the_chief_and_each_worker_by_resolvable_names():
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework="TF", numWorkers=2)
    configs = [json.loads(env(p)["TF_CONFIG"]) for p in pods]

    assert configs[0]["task"] == {"type": "chief", "index": 0}
    assert configs[2]["task"] == {"type": "worker", "index": 1}
    assert configs[0]["cluster"] == {
        "chief": [HOST.format(names(pods)[0]) + ":2222"],
        "worker": [HOST.format(n) + ":2222" for n in names(pods)[1:]]}
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)


def test_the_mpi_launcher_mounts_the_hostfile_and_points_open_mpi_at_it():
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework="MPI", numWorkers=2)
    launcher, worker = pods[0], pods[1]

    assert env(launcher)["OMPI_MCA_orte_default_hostfile"] == "/etc/mpi/hostfile"
    assert env(launcher)["FAIRWAY_MPI_ROLE"] == "launcher"
    assert env(worker)["FAIRWAY_MPI_ROLE"] == "worker"
    [volume] = launcher["spec"]["volumes"]
    assert volume["configMap"]["name"] == "bert-01234567-hostfile"
    [mount] = launcher["spec"]["containers"][0]["volumeMounts"]
    assert (mount["name"], mount["mountPath"]) == (volume["name"], "/etc/mpi")
    assert "volumes" not in worker["spec"]  # the workers run the ranks mpirun starts


def test_xgboost_workers_find_the_tracker_on_the_master():
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework="XGBoost",
                 numWorkers=2)
    envs = [env(p) for p in pods]

    assert {e["DMLC_TRACKER_URI"] for e in envs} == {HOST.format(names(pods)[0])}
    assert [e["DMLC_ROLE"] for e in envs] == ["tracker", "worker", "worker"]
    assert [e["DMLC_TASK_ID"] for e in envs] == ["0", "1", "2"]
    assert {e["DMLC_NUM_WORKER"] for e in envs} == {"2"}
    assert {e["MASTER_ADDR"] for e in envs} == {HOST.format(names(pods)[0])}


def test_jax_processes_know_the_coordinator_their_count_and_id():
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework="JAX", numWorkers=2)
    envs = [env(p) for p in pods]

    assert {e["JAX_COORDINATOR_ADDRESS"] for e in envs} == {HOST.format(names(pods)[0])
                                                            + ":1234"}
    assert {e["COORDINATOR_ADDRESS"] for e in envs} == {HOST.format(names(pods)[0])}
    assert [e["JAX_PROCESS_ID"] for e in envs] == [e["PROCESS_ID"] for e in envs] == [
        "0", "1", "2"]
    assert {e["JAX_NUM_PROCESSES"] for e in envs} == {"3"}


def test_a_master_spec_shapes_the_master_only():
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework="PyTorch",
                 numWorkers=2, command="python train.py",
                 environmentVariables=[{"name": "EPOCHS", "value": "3"},
                                       {"name": "ROLE", "value": "worker"}],
                 masterSpec={"image": "launcher:1", "args": "--serve",
                             "environmentVariables": [{"name": "ROLE", "value": "master"}],
                             "compute": {"cpuCoreRequest": 1}})
    master, worker = pods[0]["spec"]["containers"][0], pods[1]["spec"]["containers"][0]

    assert master["image"] == "launcher:1" and worker["image"] == "pytorch:24"
    assert master["command"] == worker["command"] == ["python", "train.py"]  # not its own
    assert master["args"] == ["--serve"] and "args" not in worker
    assert env(pods[0])["ROLE"] == "master" and env(pods[1])["ROLE"] == "worker"
    assert env(pods[0])["EPOCHS"] == "3"  # the workers' environment, plus its own
    assert master["resources"]["requests"] == {"cpu": "1.0"}  # its compute, no GPU
    assert "limits" not in master["resources"] or not master["resources"]["limits"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "2"


@pytest.mark.parametrize(("name", "workload_id", "expected"), [
    ("bert", "0123456789abcdef", "bert-01234567"),
    ("Big_Model.v2", "0123456789abcdef", "big-model-v2-01234567"),
    ("9lives", "0123456789abcdef", "w-9lives-01234567"),
    ("a" * 40, "0123456789abcdef", "a" * 30 + "-01234567"),
])
def test_the_service_name_is_the_pods_prefix_and_a_dns_1035_label(name, workload_id,
                                                                    expected):
    service = service_name(name, workload_id)

    assert service == expected
    assert len(service) <= 63 and service[0].isalpha()
    assert pod_name(name, workload_id, PodRole.MASTER, 0, 1).startswith(
        service.removeprefix("w-") + "-1-")


def test_inference_replicas_serve_on_their_port_and_pools_become_affinity():
    pods = build(WorkloadType.INFERENCE, pods=2, servingPort=8000, nodePools=["a100", "t4"],
                 restartPolicy="Always")
    assert [p["metadata"]["labels"]["fairway.io/role"] for p in pods] == ["replica"] * 2
    assert pods[0]["spec"]["containers"][0]["ports"][0]["containerPort"] == 8000
    terms = pods[0]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["a100", "t4"]
    assert pods[0]["spec"]["restartPolicy"] == "Always"
