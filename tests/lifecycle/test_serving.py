"""An inference server in lifecycle's core: the Service in front of its replicas and its
endpoint, replicas its autoscaler added or took away (surplus ones go, the last first), and
the phase of a server scaled to zero."""

from datetime import UTC, datetime

import pytest

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_lifecycle.core.fold import SCALED_TO_ZERO, WorkloadInfo, fold
from fairway_lifecycle.core.machine import (
    CreatePod,
    DeletePod,
    EnsureObject,
    Machine,
    PodTarget,
    Workload,
    converge,
    retire,
)
from fairway_lifecycle.core.objects import WorkloadAttempt, endpoint_url, workload_objects
from fairway_lifecycle.core.pods import build_pods

NS = "fairway-team-a"
WID = "0123456789abcdef"


def spec(pods: int = 1, **extra) -> EffectiveSpec:
    return EffectiveSpec.model_validate({
        "image": "vllm", "priorityClass": "inference", "preemptible": False,
        "backoffLimit": 6, "pods": pods, "minPods": 1, "servingPort": 8000, **extra})


def server(pods: int = 1, **extra) -> WorkloadAttempt:
    return WorkloadAttempt(WID, "llm", "team-a", WorkloadType.INFERENCE,
                           spec(pods, **extra), 1, NS)


def target(pods: int) -> PodTarget:
    # model_copy, as the autoscaler's count is set on the recorded spec (0 included)
    return PodTarget(WID, "llm", "team-a", WorkloadType.INFERENCE,
                     spec().model_copy(update={"pods": pods}), NS, 1, Phase.RUNNING, "Running")


def replicas(count: int) -> list[dict]:
    return build_pods(workload_id=WID, name="llm", project="team-a",
                      workload_type=WorkloadType.INFERENCE, spec=spec(count), attempt=1,
                      namespace=NS)


def test_an_inference_server_gets_a_cluster_ip_service_on_port_80_to_its_container_port():
    [service] = workload_objects(server())

    assert service["kind"] == "Service" and service["metadata"]["name"] == "llm-01234567"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"fairway.io/workload-id": WID}
    assert service["spec"]["ports"] == [{"name": "serving", "port": 80, "targetPort": 8000,
                                         "protocol": "TCP"}]


def test_a_grpc_server_keeps_its_port_and_its_url_says_grpc():
    grpc = server(servingPort={"container": 50051, "protocol": "grpc"})

    [service] = workload_objects(grpc)

    assert service["spec"]["ports"][0]["port"] == 50051
    assert endpoint_url(WorkloadType.INFERENCE, grpc.spec, "llm", WID, NS) == (
        "grpc://llm-01234567.fairway-team-a.svc.cluster.local:50051")


def test_the_endpoint_is_the_services_dns_name_and_none_without_a_serving_port():
    assert endpoint_url(WorkloadType.INFERENCE, spec(), "llm", WID, NS) == (
        "http://llm-01234567.fairway-team-a.svc.cluster.local")
    bare = spec().model_copy(update={"serving_port": None})
    assert endpoint_url(WorkloadType.INFERENCE, bare, "llm", WID, NS) is None
    assert workload_objects(WorkloadAttempt(WID, "llm", "team-a", WorkloadType.INFERENCE,
                                            bare, 1, NS)) == []


def test_the_service_is_made_before_the_replicas_and_deleted_with_the_server():
    intents = converge(target(2), [])

    kinds = [type(i).__name__ for i in intents]
    assert kinds == ["EnsureNamespace", "EnsureObject", "CreatePod", "CreatePod"]
    assert isinstance(intents[1], EnsureObject)
    assert [(r.kind, r.name) for r in retire(target(2))] == [("Service", "llm-01234567")]


def test_replicas_added_by_the_autoscaler_are_made_and_surplus_ones_go_the_last_first():
    up = converge(target(3), replicas(1))
    assert [i.manifest["metadata"]["name"] for i in up if isinstance(i, CreatePod)] == [
        "llm-01234567-1-1", "llm-01234567-1-2"]

    down = converge(target(1), replicas(3))
    assert [i.name for i in down if isinstance(i, DeletePod)] == [
        "llm-01234567-1-2", "llm-01234567-1-1"]
    assert all(i.grace_seconds is None for i in down)  # gracefully: requests finish

    assert {i.name for i in converge(target(0), replicas(2))} == {
        "llm-01234567-1-0", "llm-01234567-1-1"}
    assert converge(target(2), replicas(2)) == []


def test_a_replica_still_shutting_down_does_not_hold_up_a_new_one():
    [going] = replicas(1)
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"

    woken = converge(target(1), [going])

    assert [i.manifest["metadata"]["name"] for i in woken if isinstance(i, CreatePod)] == [
        "llm-01234567-1-1"]


def test_a_server_scaled_to_zero_is_running_and_says_so():
    info = WorkloadInfo(WID, "llm", "team-a", WorkloadType.INFERENCE, pods=0)

    result = fold(info, [], datetime.now(UTC))

    assert (result.phase, result.reason) == (Phase.RUNNING, SCALED_TO_ZERO)
    assert "next request" in result.message


def test_woken_from_zero_the_server_starts_again():
    machine = Machine()
    machine.track(WID, Workload(WorkloadInfo(WID, "llm", "team-a", WorkloadType.INFERENCE,
                                             pods=1, has_run=True), Phase.RUNNING))
    assert machine.rescale(WID, 0)
    assert machine.workloads[WID].info.has_run  # asleep, it has still run
    machine.rescale(WID, 1)

    info = machine.workloads[WID].info
    assert (info.pods, info.has_run) == (1, False)
    assert not machine.rescale("unknown", 2)


def test_the_serving_metrics_are_read_per_workload_summed_or_averaged_by_metric():
    from fairway_lifecycle.scaling import parse_readings

    text = """# TYPE fairway_serving_requests_per_second gauge
fairway_serving_requests_per_second{namespace="ns",workload_id="w1"} 30
fairway_serving_requests_per_second{namespace="ns",workload_id="w2"} 7
fairway_serving_pod_throughput{namespace="ns",pod="a",workload_id="w1"} 10
fairway_serving_pod_throughput{namespace="ns",pod="b",workload_id="w1"} 20
fairway_serving_pod_latency_seconds{namespace="ns",pod="a",workload_id="w1"} 0.1
fairway_serving_pod_latency_seconds{namespace="ns",pod="b",workload_id="w1"} 0.3
vllm:num_requests_waiting{workload_id="w1"} 4
unrelated_series 1
"""
    readings = parse_readings(text)

    w1 = readings["w1"]
    assert w1.requests == 30 and w1.value("throughput") == 30
    assert w1.value("latency") == pytest.approx(0.2) and w1.value("concurrency") == 0
    assert w1.value("vllm:num_requests_waiting") == 4
    assert readings["w2"].requests == 7 and readings["w2"].value("latency") == 0
