"""Simulated request load on inference servers: a step profile from a pod annotation (or set
through the admin endpoint), shared by the workload's ready replicas, reported per pod as
throughput, concurrency (Little's law) and latency in the Prometheus text format."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from fairway_kubesim.load import parse_profile, pod_load, rate_at

from .conftest import admin, bind, make_pod, wait_pod


def test_a_profile_is_steps_of_requests_per_second_the_last_one_lasting():
    steps = parse_profile("[[30, 50], [0, 5], [90, 0]]")

    assert steps == ((0, 5), (30, 50), (90, 0))
    assert [rate_at(steps, t) for t in (0, 29.9, 30, 89, 90, 1000)] == [5, 5, 50, 50, 0, 0]
    assert rate_at(((10, 3),), 5) == 0  # nothing before the first step


@pytest.mark.parametrize("text", ["", "{}", "[]", "[[1]]", "[[-1, 5]]", "[[0, true]]",
                                  '[["a", 1]]'])
def test_a_bad_profile_says_what_is_wrong(text):
    with pytest.raises(ValueError, match="seconds"):
        parse_profile(text)


def test_latency_grows_as_a_replica_fills_and_concurrency_follows_littles_law():
    idle, half, full = (pod_load("p", rps, 0.1) for rps in (0, 5, 50))

    assert idle.latency_seconds == pytest.approx(0.1) and idle.concurrency == 0
    assert half.latency_seconds == pytest.approx(0.2)   # utilization 0.5
    assert half.concurrency == pytest.approx(5 * 0.2)
    assert full.latency_seconds == pytest.approx(0.1 / 0.05)  # held below saturation


def serving_pod(name: str, workload_id: str, load: str | None = None) -> client.V1Pod:
    annotations = {"kubesim.fairway.io/service-seconds": "0.05"}
    if load is not None:
        annotations["sim.fairway.io/load"] = load
    return make_pod(name, annotations, labels={"fairway.io/workload-id": workload_id,
                                               "fairway.io/workload-type": "inference"},
                    restart_policy="Always")


def scrape(sim) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(sim.url + "/metrics/serving", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "namespace"))):
            s.value for family in text_string_to_metric_families(text)
            for s in family.samples}


def start(api, ns, pods, node="t4-1"):
    for pod in pods:
        api.create_namespaced_pod(ns, pod)
        bind(api, ns, pod.metadata.name, node)
    for pod in pods:
        wait_pod(api, ns, pod.metadata.name, lambda p: any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions or ()))


def test_the_load_is_shared_by_the_ready_replicas_and_reported_per_pod(fast_api, fast_ns,
                                                                      fast_sim):
    start(fast_api, fast_ns, [serving_pod("srv-a", "w1", "[[0, 12]]"),
                              serving_pod("srv-b", "w1")])

    metrics = scrape(fast_sim)

    assert metrics[("fairway_serving_requests_per_second", (("workload_id", "w1"),))] == 12
    assert metrics[("fairway_serving_ready_replicas", (("workload_id", "w1"),))] == 2
    for pod in ("srv-a", "srv-b"):
        at = (("pod", pod), ("workload_id", "w1"))
        assert metrics[("fairway_serving_pod_throughput", at)] == 6
        latency = metrics[("fairway_serving_pod_latency_seconds", at)]
        assert latency == pytest.approx(0.05 / (1 - 6 * 0.05), rel=1e-4)
        assert metrics[("fairway_serving_pod_concurrency", at)] == pytest.approx(6 * latency,
                                                                                 rel=1e-4)


def test_the_admin_sets_the_load_and_it_still_arrives_with_no_replica(fast_api, fast_ns,
                                                                     fast_sim):
    start(fast_api, fast_ns, [serving_pod("srv-c", "w2", "[[0, 1]]")])
    assert admin(fast_sim, "PUT", f"/admin/load/{fast_ns}/w2", {"requestsPerSecond": 40})[
        "requestsPerSecond"] == 40
    assert scrape(fast_sim)[("fairway_serving_pod_throughput",
                             (("pod", "srv-c"), ("workload_id", "w2")))] == 40

    fast_api.delete_namespaced_pod("srv-c", fast_ns, grace_period_seconds=0)
    metrics = scrape(fast_sim)

    # scaled to zero: the requests still arrive (they wait for a replica), none is served
    assert metrics[("fairway_serving_requests_per_second", (("workload_id", "w2"),))] == 40
    assert metrics[("fairway_serving_ready_replicas", (("workload_id", "w2"),))] == 0
    assert admin(fast_sim, "DELETE", f"/admin/load/{fast_ns}/w2") == {"cleared": True}
    assert scrape(fast_sim)[("fairway_serving_requests_per_second",
                             (("workload_id", "w2"),))] == 1  # the annotation's profile


def test_a_bad_load_setting_is_refused(fast_sim, fast_ns):
    req = urllib.request.Request(fast_sim.url + f"/admin/load/{fast_ns}/w3",
                                 data=json.dumps({"requestsPerSecond": -1}).encode(),
                                 method="PUT")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 400
    assert "requestsPerSecond" in info.value.read().decode()
