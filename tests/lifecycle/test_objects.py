"""The objects a workload needs besides its pods: a distributed workload's headless Service
and MPI's hostfile, made before the pods of each attempt and deleted when it is over."""

import pytest

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_lifecycle.core.machine import (
    CreatePod,
    DeleteObject,
    EnsureNamespace,
    EnsureObject,
    PodTarget,
    converge,
    retire,
)
from fairway_lifecycle.core.objects import WorkloadAttempt, object_refs, workload_objects
from fairway_lifecycle.core.pods import build_pods

NS = "fairway-team-a"
WID = "0123456789abcdef"


def spec(**extra) -> EffectiveSpec:
    return EffectiveSpec.model_validate({"image": "pytorch:24", "priorityClass": "train",
                                         "preemptible": True, "backoffLimit": 6,
                                         "compute": {"gpuDevicesRequest": 4}, **extra})


def distributed(framework: str = "PyTorch", workers: int = 2, attempt: int = 1,
                **extra) -> WorkloadAttempt:
    return WorkloadAttempt(WID, "bert", "team-a", WorkloadType.DISTRIBUTED,
                           spec(pods=1 + workers, numWorkers=workers,
                                distributedFramework=framework, **extra), attempt, NS)


def pods_of(w: WorkloadAttempt) -> list[dict]:
    return build_pods(workload_id=w.workload_id, name=w.name, project=w.project,
                      workload_type=w.workload_type, spec=w.spec, attempt=w.attempt,
                      namespace=w.namespace)


def matches(selector: dict[str, str], pod: dict) -> bool:
    labels = pod["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize(("framework", "port"), [
    ("PyTorch", 23456), ("TF", 2222), ("MPI", 2222), ("XGBoost", 9091), ("JAX", 1234)])
def test_a_distributed_attempt_gets_a_headless_service_selecting_its_pods(framework, port):
    w = distributed(framework)
    service = workload_objects(w)[0]

    assert service["kind"] == "Service"
    assert service["metadata"]["name"] == "bert-01234567"
    assert service["metadata"]["namespace"] == NS
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    pods = pods_of(w)
    assert all(matches(service["spec"]["selector"], p) for p in pods)
    assert {p["spec"]["subdomain"] for p in pods} == {service["metadata"]["name"]}


def test_a_retry_s_service_selects_the_new_attempt_only():
    service = workload_objects(distributed(attempt=2))[0]
    older = pods_of(distributed(attempt=1))

    assert service["metadata"]["name"] == "bert-01234567"  # the same name every attempt
    assert not any(matches(service["spec"]["selector"], p) for p in older)
    assert all(matches(service["spec"]["selector"], p) for p in pods_of(distributed(attempt=2)))


def test_only_mpi_gets_a_hostfile():
    kinds = {f: [o["kind"] for o in workload_objects(distributed(f))]
             for f in ("PyTorch", "TF", "MPI", "XGBoost", "JAX")}

    assert kinds == {"PyTorch": ["Service"], "TF": ["Service"], "MPI": ["Service", "ConfigMap"],
                     "XGBoost": ["Service"], "JAX": ["Service"]}


@pytest.mark.parametrize(("compute", "slots"), [
    ({"gpuDevicesRequest": 4}, 4),
    ({"gpuDevicesRequest": 0, "cpuCoreRequest": 8}, 1),
    ({"gpuRequestType": "portion", "gpuPortionRequest": 0.5, "gpuDevicesRequest": 1}, 1),
])
def test_the_mpi_hostfile_lists_every_worker_with_its_slots(compute, slots):
    w = distributed("MPI", workers=3, compute=compute)
    hostfile = workload_objects(w)[1]
    workers = [p["metadata"]["name"] for p in pods_of(w)[1:]]

    assert hostfile["metadata"]["name"] == "bert-01234567-hostfile"
    assert hostfile["data"]["hostfile"] == "".join(
        f"{name}.bert-01234567.{NS}.svc.cluster.local slots={slots}\n" for name in workers)
    launcher = pods_of(w)[0]
    assert launcher["spec"]["volumes"][0]["configMap"]["name"] == hostfile["metadata"]["name"]


@pytest.mark.parametrize("kind", [WorkloadType.WORKSPACE, WorkloadType.TRAINING])
def test_other_types_need_no_objects(kind):
    w = WorkloadAttempt(WID, "bert", "team-a", kind, spec(), 1, NS)

    assert workload_objects(w) == [] and object_refs(w) == []


def target(framework: str = "MPI", phase: Phase = Phase.PENDING, desired: str = "Running",
           attempt: int = 1) -> PodTarget:
    w = distributed(framework)
    return PodTarget(WID, "bert", "team-a", WorkloadType.DISTRIBUTED, w.spec, NS, attempt,
                     phase, desired)


def test_the_objects_are_made_before_the_pods_and_not_again_once_the_pods_are_there():
    intents = converge(target(), [])

    assert [type(i) for i in intents[:3]] == [EnsureNamespace, EnsureObject, EnsureObject]
    assert [i.manifest["kind"] for i in intents[1:3]] == ["Service", "ConfigMap"]
    assert all(isinstance(i, CreatePod) for i in intents[3:]) and len(intents) == 6
    made = [i.manifest for i in intents if isinstance(i, CreatePod)]
    assert converge(target(), made) == []


def test_a_new_attempt_s_objects_come_with_its_pods():
    intents = converge(target(attempt=2), [])
    service = next(i.manifest for i in intents if isinstance(i, EnsureObject))

    assert service["spec"]["selector"]["fairway.io/attempt"] == "2"


def test_a_finished_workload_s_objects_are_deleted():
    assert retire(target(phase=Phase.COMPLETED)) == [
        DeleteObject("Service", NS, "bert-01234567"),
        DeleteObject("ConfigMap", NS, "bert-01234567-hostfile")]
