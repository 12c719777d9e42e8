"""Lifecycle's Kubernetes adapter makes, replaces and deletes a workload's objects against a
real API server (kubesim): an attempt's Service replaces the one an earlier attempt left, the
same one again is no call, and a refusal names the object."""

import pytest

from fairway_contracts import EffectiveSpec, WorkloadType
from fairway_kubesim import KubeSimThread
from fairway_kubesim.profiles import DEFAULT_PROFILE
from fairway_lifecycle.core.objects import WorkloadAttempt, workload_objects
from fairway_lifecycle.core.retries import refusal_message
from fairway_lifecycle.kube import Kube, KubeError

pytestmark = pytest.mark.infra

NS = "fairway-objects"


@pytest.fixture(scope="module")
def kubesim(tmp_path_factory):
    with KubeSimThread(DEFAULT_PROFILE, seed=5) as sim:
        yield sim.write_kubeconfig(tmp_path_factory.mktemp("kubesim") / "kubeconfig")


@pytest.fixture
async def kube(kubesim):
    kube = Kube(str(kubesim))
    await kube.ensure_namespace(NS)
    yield kube
    kube.close()


def mpi(attempt: int, workload_id: str = "0123456789abcdef") -> list[dict]:
    spec = EffectiveSpec.model_validate({
        "image": "mpi:1", "priorityClass": "train", "preemptible": True, "backoffLimit": 1,
        "pods": 3, "numWorkers": 2, "distributedFramework": "MPI",
        "compute": {"gpuDevicesRequest": 1}})
    return workload_objects(WorkloadAttempt(workload_id, "allreduce", "team-a",
                                            WorkloadType.DISTRIBUTED, spec, attempt, NS))


def read(kube: Kube, kind: str, name: str):
    if kind == "Service":
        return kube.core.read_namespaced_service(name, NS)
    return kube.core.read_namespaced_config_map(name, NS)


async def test_an_attempt_s_objects_are_made_then_replaced_by_the_next_attempt_s(kube):
    first = mpi(attempt=1)
    assert [await kube.ensure_object(m) for m in first] == ["created", "created"]
    assert [await kube.ensure_object(m) for m in first] == ["unchanged", "unchanged"]

    second = mpi(attempt=2)
    assert [await kube.ensure_object(m) for m in second] == ["replaced", "replaced"]
    service = read(kube, "Service", "allreduce-01234567")
    assert service.spec.selector["fairway.io/attempt"] == "2"
    assert service.spec.cluster_ip == "None"
    hostfile = read(kube, "ConfigMap", "allreduce-01234567-hostfile").data["hostfile"]
    assert "allreduce-01234567-2-worker-0." in hostfile
    assert "-1-worker-" not in hostfile


async def test_a_restarted_lifecycle_finds_the_objects_as_they_should_be(kube, kubesim):
    objects = mpi(attempt=1, workload_id="fedcba9876543210")
    for m in objects:
        await kube.ensure_object(m)
    restarted = Kube(str(kubesim))
    try:
        assert [await restarted.ensure_object(m) for m in objects] == ["unchanged", "unchanged"]
    finally:
        restarted.close()


async def test_deleting_an_object_twice_is_deleting_it_once(kube):
    [service, hostfile] = mpi(attempt=1, workload_id="aaaaaaaa00000000")
    await kube.ensure_object(service)
    await kube.delete_object("Service", NS, service["metadata"]["name"])
    await kube.delete_object("Service", NS, service["metadata"]["name"])  # gone: fine
    await kube.delete_object("ConfigMap", NS, hostfile["metadata"]["name"])  # never made
    with pytest.raises(Exception) as gone:
        read(kube, "Service", service["metadata"]["name"])
    assert getattr(gone.value, "status", None) == 404


async def test_a_refused_object_raises_naming_it(kube):
    [service, _] = mpi(attempt=1, workload_id="bbbbbbbb00000000")
    service["spec"]["ports"][0]["port"] = 70000  # not a port

    with pytest.raises(KubeError) as refused:
        await kube.ensure_object(service)

    assert refused.value.status == 422
    assert refused.value.what == "Service allreduce-bbbbbbbb"
    assert "spec.ports[0].port" in refusal_message(refused.value.body)  # the server's words
