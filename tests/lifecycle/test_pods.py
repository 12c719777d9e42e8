"""Pods built for each workload type, with the environment each framework expects."""

import json

from fairway_contracts import EffectiveSpec, WorkloadType
from fairway_lifecycle.core.pods import build_pods


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


def test_pytorch_ranks_and_rendezvous():
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework="PyTorch",
                 numWorkers=2)
    roles = [p["metadata"]["labels"]["fairway.io/role"] for p in pods]
    assert roles == ["master", "worker", "worker"]
    envs = [env(p) for p in pods]
    assert [e["RANK"] for e in envs] == ["0", "1", "2"]
    assert {e["WORLD_SIZE"] for e in envs} == {"3"}
    assert {e["MASTER_ADDR"] for e in envs} == {f"{pods[0]['metadata']['name']}.fairway-team-a"}


def test_tf_config_names_the_chief_and_each_task():
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework="TF", numWorkers=2)
    configs = [json.loads(env(p)["TF_CONFIG"]) for p in pods]
    assert configs[0]["task"] == {"type": "chief", "index": 0}
    assert configs[2]["task"] == {"type": "worker", "index": 1}
    assert len(configs[0]["cluster"]["worker"]) == 2


def test_mpi_launcher_gets_a_hostfile_of_the_workers():
    pods = build(WorkloadType.DISTRIBUTED, pods=3, distributedFramework="MPI", numWorkers=2)
    hostfile = env(pods[0])["FAIRWAY_MPI_HOSTFILE"].splitlines()
    assert len(hostfile) == 2 and all(line.endswith("slots=1") for line in hostfile)
    assert env(pods[0])["FAIRWAY_MPI_ROLE"] == "launcher"


def test_inference_replicas_serve_on_their_port_and_pools_become_affinity():
    pods = build(WorkloadType.INFERENCE, pods=2, servingPort=8000, nodePools=["a100", "t4"],
                 restartPolicy="Always")
    assert [p["metadata"]["labels"]["fairway.io/role"] for p in pods] == ["replica"] * 2
    assert pods[0]["spec"]["containers"][0]["ports"][0]["containerPort"] == 8000
    terms = pods[0]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["a100", "t4"]
    assert pods[0]["spec"]["restartPolicy"] == "Always"
