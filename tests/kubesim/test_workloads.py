"""The workload controllers through the official client: Jobs, Deployments → ReplicaSets,
StatefulSets, PyTorchJobs (create, list, watch, scale, patch, delete with cascade, completion,
failure), discovery, and the default-scheduler stand-in that runs their pods."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from fairway_kubesim import DEFAULT_PROFILE, KubeSim, KubeSimThread, Timings, load_profile

from .conftest import FAST, FAST_TIMINGS, error_body

_names = itertools.count()
RUN = {**FAST, "sim.fairway.io/run-seconds": "0.3"}


@dataclasses.dataclass
class Clients:
    core: client.CoreV1Api
    apps: client.AppsV1Api
    batch: client.BatchV1Api
    custom: client.CustomObjectsApi
    sim: KubeSimThread


@pytest.fixture(scope="module")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    """A simulator that also plays kube-scheduler, so the controllers' pods run."""
    profile = dataclasses.replace(load_profile(DEFAULT_PROFILE), timings=Timings(**FAST_TIMINGS))
    with KubeSimThread(profile, bookmark_interval=0.3, seed=5, default_scheduler=True) as sim:
        path = sim.write_kubeconfig(tmp_path_factory.mktemp("workloads") / "kubeconfig")
        api_client = config.new_client_from_config(config_file=str(path))
        yield Clients(client.CoreV1Api(api_client), client.AppsV1Api(api_client),
                      client.BatchV1Api(api_client), client.CustomObjectsApi(api_client), sim)


@pytest.fixture()
def ns(k8s: Clients) -> str:
    name = f"w{next(_names)}"
    k8s.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def template(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
             restart: str = "Always", scheduler: str | None = None, gpus: int = 0,
             grace: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    spec: dict[str, Any] = {"restartPolicy": restart, "terminationGracePeriodSeconds": grace,
                            "containers": [container]}
    if scheduler:
        spec["schedulerName"] = scheduler
    return {"metadata": {"labels": labels or {}, "annotations": {**FAST, **(annotations or {})}},
            "spec": spec}


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def pods_of(k8s: Clients, ns: str, alive: bool = True) -> list[client.V1Pod]:
    pods = k8s.core.list_namespaced_pod(ns).items
    if alive:
        pods = [p for p in pods if p.metadata.deletion_timestamp is None]
    return sorted(pods, key=lambda p: p.metadata.name)


def conditions(obj: Any) -> dict[str, str]:
    status = obj["status"] if isinstance(obj, dict) else obj.status
    conds = status.get("conditions") if isinstance(status, dict) else status.conditions
    return {(c["type"] if isinstance(c, dict) else c.type):
            (c["status"] if isinstance(c, dict) else c.status) for c in conds or ()}


# discovery ---------------------------------------------------------------------------------

def test_discovery_names_the_new_groups_and_their_resources(k8s: Clients) -> None:
    groups = {g.name: g.preferred_version.group_version
              for g in client.ApisApi(k8s.core.api_client).get_api_versions().groups}
    assert groups["batch"] == "batch/v1" and groups["apps"] == "apps/v1"
    assert groups["kubeflow.org"] == "kubeflow.org/v1"
    apps = {r.name: r for r in k8s.apps.get_api_resources().resources}
    assert {"deployments", "deployments/scale", "replicasets", "statefulsets/scale"} <= set(apps)
    assert apps["deployments"].short_names == ["deploy"]
    assert apps["deployments/scale"].kind == "Scale" and apps["deployments/scale"].group == \
        "autoscaling"
    assert [r.name for r in k8s.batch.get_api_resources().resources] == ["jobs", "jobs/status"]


# Jobs --------------------------------------------------------------------------------------

def test_a_job_runs_parallelism_pods_at_a_time_until_its_completions(
        k8s: Clients, ns: str) -> None:
    w = watch.Watch()
    k8s.batch.create_namespaced_job(ns, {
        "metadata": {"name": "train"},
        "spec": {"parallelism": 2, "completions": 5,
                 "template": template(annotations=RUN, restart="Never")}})
    seen: list[tuple[str, int]] = []
    for event in w.stream(k8s.batch.list_namespaced_job, ns, timeout_seconds=15):
        job = event["object"]
        seen.append((event["type"], job.status.active or 0))
        if conditions(job).get("Complete") == "True":
            w.stop()
    assert seen[0][0] == "ADDED" and max(active for _, active in seen) == 2
    job = k8s.batch.read_namespaced_job("train", ns)
    assert (job.status.succeeded, job.status.failed, job.status.active) == (5, 0, 0)
    assert job.status.completion_time is not None and job.status.start_time is not None
    assert job.spec.backoff_limit == 6  # defaulted
    pods = pods_of(k8s, ns)
    assert len(pods) == 5 and all(p.status.phase == "Succeeded" for p in pods)
    ref = pods[0].metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == (
        "Job", "train", job.metadata.uid, True, True)
    assert pods[0].metadata.labels["job-name"] == "train"
    assert pods[0].metadata.labels["batch.kubernetes.io/controller-uid"] == job.metadata.uid
    assert pods[0].metadata.name.startswith("train-")


def test_a_job_fails_past_its_backoff_limit(k8s: Clients, ns: str) -> None:
    k8s.batch.create_namespaced_job(ns, {
        "metadata": {"name": "broken"},
        "spec": {"backoffLimit": 1, "template": template(
            annotations={**RUN, "sim.fairway.io/exit-code": "3"}, restart="Never")}})
    job = wait_for(lambda: (j := k8s.batch.read_namespaced_job("broken", ns)) and
                   conditions(j).get("Failed") == "True" and j, what="the Job to fail")
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert failed.reason == "BackoffLimitExceeded"
    assert (job.status.failed, job.status.succeeded, job.status.active) == (2, 0, 0)
    time.sleep(0.3)  # no pod made after the end
    assert len(pods_of(k8s, ns)) == 2


def test_a_job_pod_deleted_while_running_counts_as_failed_and_is_replaced(
        k8s: Clients, ns: str) -> None:
    k8s.batch.create_namespaced_job(ns, {
        "metadata": {"name": "evicted"},
        "spec": {"backoffLimit": 3, "template": template(restart="Never")}})
    first = wait_for(lambda: [p for p in pods_of(k8s, ns) if p.status.phase == "Running"],
                     what="a running pod")[0]
    k8s.core.delete_namespaced_pod(first.metadata.name, ns)
    replaced = wait_for(lambda: [p for p in pods_of(k8s, ns)
                                 if p.metadata.name != first.metadata.name],
                        what="a replacement pod")
    assert len(replaced) == 1
    job = wait_for(lambda: (j := k8s.batch.read_namespaced_job("evicted", ns)) and
                   j.status.failed == 1 and j, what="the failure counted")
    assert conditions(job).get("Failed") is None and job.status.active == 1


def test_a_job_pod_keeps_the_templates_scheduler_and_waits_for_it(k8s: Clients,
                                                                    ns: str) -> None:
    k8s.batch.create_namespaced_job(ns, {
        "metadata": {"name": "gang"},
        "spec": {"parallelism": 3, "completions": 3,
                 "template": template(restart="Never", scheduler="fairway")}})
    pods = wait_for(lambda: len(p := pods_of(k8s, ns)) == 3 and p, what="three pods")
    assert {p.spec.scheduler_name for p in pods} == {"fairway"}
    time.sleep(0.3)
    assert all(p.spec.node_name is None for p in pods_of(k8s, ns))  # nobody else binds them


def test_job_admission_names_the_field(k8s: Clients, ns: str) -> None:
    cases = [
        ({"template": template(restart="Always")}, "spec.template.spec.restartPolicy"),
        ({"parallelism": -1, "template": template(restart="Never")}, "spec.parallelism"),
        ({"template": {"spec": {"containers": []}}}, "spec.template.spec.containers"),
    ]
    for spec, field in cases:
        with pytest.raises(client.ApiException) as err:
            k8s.batch.create_namespaced_job(ns, {"metadata": {"name": "bad"}, "spec": spec})
        assert err.value.status == 422
        assert [c["field"] for c in error_body(err.value)["details"]["causes"]] == [field]


def test_suspending_a_job_removes_its_pods_and_resuming_makes_them_again(
        k8s: Clients, ns: str) -> None:
    k8s.batch.create_namespaced_job(ns, {
        "metadata": {"name": "paused"},
        "spec": {"parallelism": 2, "completions": 2, "template": template(restart="Never")}})
    wait_for(lambda: len(pods_of(k8s, ns)) == 2, what="two pods")
    k8s.batch.patch_namespaced_job("paused", ns, {"spec": {"suspend": True}})
    wait_for(lambda: not pods_of(k8s, ns), what="the pods to go")
    job = k8s.batch.read_namespaced_job("paused", ns)
    assert conditions(job)["Suspended"] == "True" and job.metadata.generation == 2
    k8s.batch.patch_namespaced_job("paused", ns, {"spec": {"suspend": False}})
    wait_for(lambda: len(pods_of(k8s, ns)) == 2, what="two pods again")
    job = k8s.batch.read_namespaced_job_status("paused", ns)
    assert (job.status.failed, job.status.active) == (0, 2)  # suspension is no failure
    assert conditions(job)["Suspended"] == "False"
    with pytest.raises(client.ApiException) as err:
        k8s.batch.patch_namespaced_job("paused", ns, {"spec": {"completions": 9}})
    assert err.value.status == 422 and "spec.completions" in err.value.body


# Deployments and ReplicaSets ---------------------------------------------------------------

def deployment(name: str, replicas: int, **kwargs: Any) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": template(labels={"app": name}, **kwargs)}}


def test_a_deployment_makes_a_replica_set_and_scales_through_the_scale_subresource(
        k8s: Clients, ns: str) -> None:
    k8s.apps.create_namespaced_deployment(ns, deployment("web", 3))
    ready = wait_for(lambda: (d := k8s.apps.read_namespaced_deployment("web", ns)) and
                     d.status.ready_replicas == 3 and d, what="3 ready replicas")
    assert conditions(ready)["Available"] == "True"
    (rs,) = k8s.apps.list_namespaced_replica_set(ns).items
    hash_ = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{hash_}" and rs.spec.replicas == 3
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": hash_}
    assert rs.metadata.owner_references[0].kind == "Deployment"
    pods = pods_of(k8s, ns)
    assert len(pods) == 3 and all(p.metadata.name.startswith(rs.metadata.name + "-")
                                  for p in pods)
    assert {p.metadata.owner_references[0].name for p in pods} == {rs.metadata.name}
    assert all(p.metadata.labels["pod-template-hash"] == hash_ for p in pods)
    scale = k8s.apps.read_namespaced_deployment_scale("web", ns)
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (
        3, 3, "app=web")
    k8s.apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}})
    wait_for(lambda: len(pods_of(k8s, ns)) == 5, what="5 pods")
    k8s.apps.replace_namespaced_deployment_scale("web", ns, {
        "metadata": {"name": "web"}, "spec": {"replicas": 1}})
    wait_for(lambda: len(pods_of(k8s, ns, alive=False)) == 1, what="1 pod")
    with pytest.raises(client.ApiException) as err:
        k8s.apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": -2}})
    assert err.value.status == 422 and "spec.replicas" in err.value.body


def test_a_new_template_rolls_to_a_new_replica_set(k8s: Clients, ns: str) -> None:
    k8s.apps.create_namespaced_deployment(ns, deployment("web", 2))
    wait_for(lambda: len(pods_of(k8s, ns)) == 2, what="2 pods")
    first = k8s.apps.list_namespaced_replica_set(ns).items[0].metadata.name
    k8s.apps.patch_namespaced_deployment("web", ns, {"spec": {"template": {"metadata": {
        "annotations": {"sim.fairway.io/gpu-utilization": "10"}}}}})

    def rolled() -> bool:
        sets = {r.metadata.name: r for r in k8s.apps.list_namespaced_replica_set(ns).items}
        pods = pods_of(k8s, ns, alive=False)
        return len(sets) == 2 and sets[first].spec.replicas == 0 and len(pods) == 2 and all(
            not p.metadata.name.startswith(first) for p in pods)

    wait_for(rolled, what="the rollout")
    new = next(r for r in k8s.apps.list_namespaced_replica_set(ns).items
               if r.metadata.name != first)
    assert new.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    with pytest.raises(client.ApiException) as err:
        k8s.apps.patch_namespaced_deployment("web", ns, {"spec": {"selector": {
            "matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {
                "app": "other"}}}}})
    assert err.value.status == 422 and "spec.selector" in err.value.body


def test_deleting_a_deployment_cascades_to_its_replica_sets_and_pods(
        k8s: Clients, ns: str) -> None:
    k8s.apps.create_namespaced_deployment(ns, deployment("web", 2))
    wait_for(lambda: len(pods_of(k8s, ns)) == 2, what="2 pods")
    status = k8s.apps.delete_namespaced_deployment("web", ns)
    assert (status["status"] if isinstance(status, dict) else status.status) == "Success"
    assert not k8s.apps.list_namespaced_replica_set(ns).items  # the owner and its sets, at once
    wait_for(lambda: not k8s.core.list_namespaced_pod(ns).items, what="the pods to go")


def test_orphan_propagation_leaves_the_dependents_without_their_owner(
        k8s: Clients, ns: str) -> None:
    k8s.apps.create_namespaced_replica_set(ns, deployment("solo", 2))
    wait_for(lambda: len(pods_of(k8s, ns)) == 2, what="2 pods")
    k8s.apps.delete_namespaced_replica_set("solo", ns, propagation_policy="Orphan")
    time.sleep(0.3)
    pods = pods_of(k8s, ns)
    assert len(pods) == 2 and all(not p.metadata.owner_references for p in pods)
    k8s.apps.create_namespaced_replica_set(ns, deployment("fore", 1))
    wait_for(lambda: len(pods_of(k8s, ns)) == 3, what="3 pods")
    with pytest.raises(client.ApiException) as err:
        k8s.apps.delete_namespaced_replica_set("fore", ns, propagation_policy="Sideways")
    assert err.value.status == 400 and "propagationPolicy" in err.value.body
    k8s.apps.delete_namespaced_replica_set("fore", ns, propagation_policy="Foreground")
    wait_for(lambda: len(k8s.core.list_namespaced_pod(ns).items) == 2, what="its pod to go")
    assert {p.metadata.name for p in pods_of(k8s, ns)} == {p.metadata.name for p in pods}


def test_a_replica_set_replaces_a_deleted_pod_and_watch_sees_it(k8s: Clients, ns: str) -> None:
    k8s.apps.create_namespaced_replica_set(ns, deployment("rs", 2))
    pods = wait_for(lambda: len(p := pods_of(k8s, ns)) == 2 and p, what="2 pods")
    listed = k8s.core.list_namespaced_pod(ns)
    k8s.core.delete_namespaced_pod(pods[0].metadata.name, ns)
    events, w = [], watch.Watch()
    for event in w.stream(k8s.core.list_namespaced_pod, ns, timeout_seconds=10,
                          resource_version=listed.metadata.resource_version):
        events.append((event["type"], event["object"].metadata.name))
        if len({n for t, n in events if t == "ADDED"} - {p.metadata.name for p in pods}):
            w.stop()
    assert ("DELETED", pods[0].metadata.name) in events
    assert listed.metadata.resource_version
    wait_for(lambda: k8s.apps.read_namespaced_replica_set("rs", ns).status.ready_replicas == 2,
             what="2 ready again")


def test_apps_admission_checks_selector_and_restart_policy(k8s: Clients, ns: str) -> None:
    bad = deployment("web", 1)
    bad["spec"]["selector"] = {"matchLabels": {"app": "else"}}
    with pytest.raises(client.ApiException) as err:
        k8s.apps.create_namespaced_deployment(ns, bad)
    assert err.value.status == 422 and "spec.template.metadata.labels" in err.value.body
    with pytest.raises(client.ApiException) as err:
        k8s.apps.create_namespaced_stateful_set(ns, deployment("db", 1, restart="Never"))
    assert err.value.status == 422 and "spec.template.spec.restartPolicy" in err.value.body


def test_status_subresource_and_delete_collection(k8s: Clients, ns: str) -> None:
    k8s.apps.create_namespaced_replica_set(ns, deployment("keep", 0))
    k8s.apps.create_namespaced_replica_set(ns, {**deployment("drop", 1),
                                                "metadata": {"name": "drop",
                                                             "labels": {"tier": "x"}}})
    wait_for(lambda: len(pods_of(k8s, ns)) == 1, what="1 pod")
    patched = k8s.apps.patch_namespaced_replica_set_status("keep", ns, {"status": {
        "conditions": [{"type": "ReplicaFailure", "status": "False"}]}})
    assert patched.status.conditions[0].type == "ReplicaFailure"
    assert patched.spec.replicas == 0  # the status subresource changes the status only
    k8s.apps.delete_collection_namespaced_replica_set(ns, label_selector="tier=x")
    assert [r.metadata.name for r in k8s.apps.list_namespaced_replica_set(ns).items] == ["keep"]
    wait_for(lambda: not k8s.core.list_namespaced_pod(ns).items, what="its pod to go")


def test_deleting_the_namespace_takes_the_workloads_and_makes_no_new_pods(
        k8s: Clients) -> None:
    name = f"w{next(_names)}"
    k8s.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    k8s.apps.create_namespaced_deployment(name, deployment("web", 2, grace=2))
    k8s.batch.create_namespaced_job(name, {"metadata": {"name": "j"},
                                           "spec": {"template": template(restart="Never")}})
    wait_for(lambda: len(pods_of(k8s, name)) == 3, what="3 pods")
    k8s.core.delete_namespace(name)
    time.sleep(0.5)  # the pods terminate for their grace period; none is made meanwhile
    assert all(p.metadata.deletion_timestamp for p in k8s.core.list_namespaced_pod(name).items)

    def gone() -> bool:
        try:
            k8s.core.read_namespace(name)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=15, what="the namespace to go")
    assert not k8s.apps.list_deployment_for_all_namespaces(
        field_selector=f"metadata.namespace={name}").items


# StatefulSets ------------------------------------------------------------------------------

def test_a_stateful_set_makes_ordinal_pods_in_order_and_removes_the_highest_first(
        k8s: Clients, ns: str) -> None:
    spec = deployment("db", 3)
    spec["spec"]["serviceName"] = "db"
    k8s.apps.create_namespaced_stateful_set(ns, spec)
    added: list[str] = []
    w = watch.Watch()
    for event in w.stream(k8s.core.list_namespaced_pod, ns, timeout_seconds=15):
        pod = event["object"]
        if event["type"] == "ADDED":
            # OrderedReady: no pod is made while a lower one is not yet running and ready
            others = [p for p in pods_of(k8s, ns) if p.metadata.name < pod.metadata.name]
            assert all(p.status.phase == "Running" for p in others), pod.metadata.name
            added.append(pod.metadata.name)
        if len(added) == 3:
            w.stop()
    assert added == ["db-0", "db-1", "db-2"]
    pod = k8s.core.read_namespaced_pod("db-1", ns)
    assert (pod.spec.hostname, pod.spec.subdomain) == ("db-1", "db")
    assert pod.metadata.labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert pod.metadata.owner_references[0].kind == "StatefulSet"
    wait_for(lambda: k8s.apps.read_namespaced_stateful_set("db", ns).status.ready_replicas
             == 3, what="3 ready")
    since = k8s.core.list_namespaced_pod(ns).metadata.resource_version
    k8s.apps.patch_namespaced_stateful_set_scale("db", ns, {"spec": {"replicas": 1}})
    gone: list[str] = []
    w = watch.Watch()
    for event in w.stream(k8s.core.list_namespaced_pod, ns, timeout_seconds=15,
                          resource_version=since):
        if event["type"] == "DELETED":
            gone.append(event["object"].metadata.name)
        if len(gone) == 2:
            w.stop()
    assert gone == ["db-2", "db-1"]
    assert [p.metadata.name for p in pods_of(k8s, ns)] == ["db-0"]
    k8s.apps.delete_namespaced_stateful_set("db", ns)
    wait_for(lambda: not k8s.core.list_namespaced_pod(ns).items, what="the pods to go")


def test_a_parallel_stateful_set_makes_every_pod_at_once(k8s: Clients, ns: str) -> None:
    spec = deployment("p", 3, scheduler="fairway")
    spec["spec"]["podManagementPolicy"] = "Parallel"
    k8s.apps.create_namespaced_stateful_set(ns, spec)
    wait_for(lambda: [p.metadata.name for p in pods_of(k8s, ns)] == ["p-0", "p-1", "p-2"],
             what="three pods, unbound")


# PyTorchJob --------------------------------------------------------------------------------

def pytorch_job(name: str, workers: int, worker_annotations: dict[str, str] | None = None,
                restart: str = "OnFailure", **kwargs: Any) -> dict[str, Any]:
    def replica(count: int, annotations: dict[str, str]) -> dict[str, Any]:
        return {"replicas": count, "restartPolicy": restart,
                "template": template(annotations=annotations, restart="OnFailure", **kwargs)}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": name},
            "spec": {"pytorchReplicaSpecs": {
                "Master": replica(1, RUN),
                "Worker": replica(workers, worker_annotations or RUN)}}}


def create_pytorch(k8s: Clients, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    return k8s.custom.create_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs",
                                                       body)


def read_pytorch(k8s: Clients, ns: str, name: str) -> dict[str, Any]:
    return k8s.custom.get_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs",
                                                    name)


def test_a_pytorch_job_runs_master_and_workers_to_success(k8s: Clients, ns: str) -> None:
    created = create_pytorch(k8s, ns, pytorch_job("bert", 2))
    assert created["spec"]["runPolicy"]["cleanPodPolicy"] == "None"
    job = wait_for(lambda: (j := read_pytorch(k8s, ns, "bert")) and
                   conditions(j).get("Succeeded") == "True" and j, what="success")
    assert conditions(job) == {"Created": "True", "Running": "False", "Succeeded": "True"}
    assert job["status"]["replicaStatuses"]["Worker"]["succeeded"] == 2
    pods = {p.metadata.name: p for p in pods_of(k8s, ns)}
    assert sorted(pods) == ["bert-master-0", "bert-worker-0", "bert-worker-1"]
    env = {e.name: e.value for e in pods["bert-worker-1"].spec.containers[0].env}
    assert (env["MASTER_ADDR"], env["WORLD_SIZE"], env["RANK"]) == ("bert-master-0", "3", "2")
    labels = pods["bert-master-0"].metadata.labels
    assert labels["training.kubeflow.org/replica-type"] == "master"
    assert labels["training.kubeflow.org/job-role"] == "master"
    ref = pods["bert-worker-0"].metadata.owner_references[0]
    assert (ref.kind, ref.api_version, ref.controller) == ("PyTorchJob", "kubeflow.org/v1", True)
    listed = k8s.custom.list_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs")
    assert [j["metadata"]["name"] for j in listed["items"]] == ["bert"]
    k8s.custom.delete_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", "bert")
    wait_for(lambda: not k8s.core.list_namespaced_pod(ns).items, what="the pods to go")


def test_a_pytorch_job_fails_when_a_never_restarting_worker_fails(k8s: Clients,
                                                                    ns: str) -> None:
    body = pytorch_job("crash", 1, {**FAST, "sim.fairway.io/run-seconds": "0.2",
                                    "sim.fairway.io/exit-code": "1"}, restart="Never")
    body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["metadata"]["annotations"] = FAST
    body["spec"]["runPolicy"] = {"cleanPodPolicy": "Running"}
    create_pytorch(k8s, ns, body)
    job = wait_for(lambda: (j := read_pytorch(k8s, ns, "crash")) and
                   conditions(j).get("Failed") == "True" and j, what="failure")
    assert "crash-worker-0" in next(c["message"] for c in job["status"]["conditions"]
                                    if c["type"] == "Failed")
    wait_for(lambda: [p.metadata.name for p in pods_of(k8s, ns)] == ["crash-worker-0"],
             what="the running master cleaned up")


def test_a_pytorch_job_remakes_an_evicted_pod_and_checks_its_spec(k8s: Clients,
                                                                   ns: str) -> None:
    create_pytorch(k8s, ns, pytorch_job("long", 1, FAST, scheduler="fairway"))
    wait_for(lambda: len(pods_of(k8s, ns)) == 2, what="2 pods")
    k8s.core.delete_namespaced_pod("long-worker-0", ns)
    wait_for(lambda: (p := k8s.core.list_namespaced_pod(ns).items) and len(p) == 2 and all(
        x.metadata.deletion_timestamp is None for x in p), what="the worker made again")
    bad = pytorch_job("bad", 1)
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    bad["spec"]["pytorchReplicaSpecs"]["Chief"] = {"replicas": 1}
    with pytest.raises(client.ApiException) as err:
        create_pytorch(k8s, ns, bad)
    fields = {c["field"] for c in error_body(err.value)["details"]["causes"]}
    assert fields == {"spec.pytorchReplicaSpecs.Master.replicas",
                      "spec.pytorchReplicaSpecs.Chief"}


# the default-scheduler stand-in ------------------------------------------------------------

def test_the_default_scheduler_binds_where_there_is_room_and_says_why_not(
        tmp_path: Path) -> None:
    profile = {"nodes": [{"name": "gpu-{1..2}", "gpus": 2, "labels": {"pool": "p"}}],
               "timings": {"pullSeconds": 0.1, "startSeconds": 0.1}}
    with KubeSimThread(profile, default_scheduler=True) as sim:
        path = sim.write_kubeconfig(tmp_path / "kubeconfig")
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(path)))
        pod = {"metadata": {"name": "a"}, "spec": {"terminationGracePeriodSeconds": 0,
                                                    "containers": [{
                                                        "name": "m", "image": "busybox:1.36",
                                                        "resources": {"limits": {
                                                            "nvidia.com/gpu": "2"}}}]}}
        for name in ("a", "b"):
            core.create_namespaced_pod("default", dict(pod, metadata={"name": name}))
        a, b = (wait_for(lambda n=n: core.read_namespaced_pod(n, "default").spec.node_name,
                         what=f"{n} bound") for n in ("a", "b"))
        assert {a, b} == {"gpu-1", "gpu-2"}
        core.create_namespaced_pod("default", dict(pod, metadata={"name": "c"}))
        why = wait_for(lambda: next((c for c in core.read_namespaced_pod(
            "c", "default").status.conditions or () if c.type == "PodScheduled"), None),
            what="the reason")
        assert (why.status, why.reason) == ("False", "Unschedulable")
        assert why.message == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
        fairway = dict(pod, metadata={"name": "f"},
                       spec=dict(pod["spec"], schedulerName="fairway"))
        core.create_namespaced_pod("default", fairway)
        core.delete_namespaced_pod("a", "default")
        assert wait_for(lambda: core.read_namespaced_pod("c", "default").spec.node_name,
                        what="c bound once a left") == a
        assert core.read_namespaced_pod("f", "default").spec.node_name is None
        events = core.list_namespaced_event("default").items
        assert any(e.reason == "Scheduled" and e.involved_object.name == "c" for e in events)


# kubectl -----------------------------------------------------------------------------------

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {{sim.fairway.io/pull-seconds: "0.1", sim.fairway.io/start-seconds: "0.1"}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{{name: main, image: "busybox:1.36"}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {ns}}}
spec:
  replicas: 1
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata:
      labels: {{app: db}}
      annotations: {{sim.fairway.io/pull-seconds: "0.1", sim.fairway.io/start-seconds: "0.1"}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{{name: main, image: "busybox:1.36"}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: once, namespace: {ns}}}
spec:
  template:
    metadata:
      annotations: {{sim.fairway.io/pull-seconds: "0.1", sim.fairway.io/start-seconds: "0.1",
                    sim.fairway.io/run-seconds: "0.2"}}
    spec:
      restartPolicy: Never
      containers: [{{name: main, image: "busybox:1.36"}}]
---
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {{name: ddp, namespace: {ns}}}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      template:
        spec:
          schedulerName: fairway
          containers: [{{name: pytorch, image: "pytorch/pytorch:2.5"}}]
    Worker:
      replicas: 2
      template:
        spec:
          schedulerName: fairway
          containers: [{{name: pytorch, image: "pytorch/pytorch:2.5"}}]
"""


def test_kubectl_applies_gets_scales_and_deletes_the_workload_kinds(
        k8s: Clients, ns: str, tmp_path: Path) -> None:
    from .test_kubectl import kubectl_in

    binary = shutil.which("kubectl")
    assert binary, "kubectl not found (Debian: apt-get install kubernetes-client)"
    kubectl = kubectl_in(binary, k8s.sim.write_kubeconfig(tmp_path / "kubeconfig"))
    resources = kubectl("api-resources", "--no-headers")
    for row in ("deployments", "statefulsets", "replicasets", "jobs", "pytorchjobs"):
        assert row in resources
    manifest = MANIFESTS.format(ns=ns)
    out = kubectl("apply", "-f", "-", stdin=manifest)
    for created in ("deployment.apps/web created", "statefulset.apps/db created",
                    "job.batch/once created", "pytorchjob.kubeflow.org/ddp created"):
        assert created in out, out
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "-n", ns,
                                                "--timeout=20s")
    assert "condition met" in kubectl("wait", "--for=condition=complete", "job/once", "-n", ns,
                                      "--timeout=20s")
    wait_for(lambda: "2/2" in kubectl("get", "deploy", "web", "-n", ns), what="web 2/2")
    header, row = kubectl("get", "deployments", "-n", ns).strip().split("\n")
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:4] == ["web", "2/2", "2", "2"]
    wait_for(lambda: "Complete" in kubectl("get", "job", "once", "-n", ns), what="complete")
    assert kubectl("get", "job", "once", "-n", ns).split("\n")[1].split()[:3] == [
        "once", "Complete", "1/1"]
    assert "db" in kubectl("get", "sts", "-n", ns) and "web-" in kubectl("get", "rs", "-n", ns)
    assert kubectl("get", "pytorchjob", "ddp", "-n", ns, "-o",
                   "jsonpath={.status.conditions[0].type}") == "Created"
    pods = kubectl("get", "pods", "-n", ns, "-o", "name").split()
    assert {"pod/ddp-master-0", "pod/ddp-worker-0", "pod/ddp-worker-1", "pod/db-0"} <= set(pods)
    assert "deployment.apps/web scaled" in kubectl("scale", "deployment/web", "--replicas=3",
                                                   "-n", ns)
    wait_for(lambda: "3/3" in kubectl("get", "deploy", "web", "-n", ns), what="web 3/3")
    # apply again with a change: kubectl patches the live objects
    out = kubectl("apply", "-f", "-", stdin=manifest.replace("replicas: 1\n  serviceName",
                                                             "replicas: 2\n  serviceName"))
    assert "statefulset.apps/db configured" in out
    wait_for(lambda: "2/2" in kubectl("get", "sts", "db", "-n", ns), what="db 2/2")
    out = kubectl("delete", "-f", "-", stdin=manifest)
    assert 'deployment.apps "web" deleted' in out and 'pytorchjob.kubeflow.org "ddp" deleted' \
        in out
    assert kubectl("get", "deploy,sts,rs,job,pytorchjobs", "-n", ns, "-o", "name") == ""
    wait_for(lambda: kubectl("get", "pods", "-n", ns, "-o", "name") == "", what="no pods")


def test_a_protobuf_body_is_refused_as_an_unsupported_media_type(k8s: Clients, ns: str) -> None:
    """kubectl's generators (`kubectl create deployment`) send protobuf, which kubesim does
    not decode: a clear 415, not a parse error."""
    request = urllib.request.Request(
        f"{k8s.sim.url}/apis/apps/v1/namespaces/{ns}/deployments", data=b"k8s\x00\n\x0e",
        method="POST", headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 415
    status = json.loads(err.value.read())
    assert status["reason"] == "UnsupportedMediaType" and "application/json" in status["message"]


async def test_a_restart_keeps_the_workloads_and_their_pods(tmp_path: Path) -> None:
    """Snapshots keep the workload kinds; after a restart their controllers carry on with
    the pods they had (no second set), and a Job's counts survive."""
    def clients(sim: KubeSim) -> tuple[client.AppsV1Api, client.BatchV1Api, client.CoreV1Api]:
        configuration = client.Configuration()
        configuration.host = sim.url
        api_client = client.ApiClient(configuration)
        return client.AppsV1Api(api_client), client.BatchV1Api(api_client), \
            client.CoreV1Api(api_client)

    async def until(check: Callable[[], Any]) -> Any:
        return await asyncio.to_thread(wait_for, check, 10.0)

    snapshot = tmp_path / "cluster.json"
    profile = dataclasses.replace(load_profile(DEFAULT_PROFILE), timings=Timings(**FAST_TIMINGS))
    sim = KubeSim(profile, snapshot=snapshot, snapshot_seconds=0.1, default_scheduler=True)
    await sim.start()
    apps, batch, core = clients(sim)
    await asyncio.to_thread(apps.create_namespaced_deployment, "default", deployment("web", 2))
    await asyncio.to_thread(batch.create_namespaced_job, "default", {
        "metadata": {"name": "two"}, "spec": {"completions": 2, "template": template(
            annotations={**FAST, "sim.fairway.io/run-seconds": "0.2"}, restart="Never")}})
    await until(lambda: batch.read_namespaced_job("two", "default").status.succeeded == 2)
    await until(lambda: apps.read_namespaced_deployment("web", "default").status
                .ready_replicas == 2)
    before = sorted(p.metadata.name for p in (await asyncio.to_thread(
        core.list_namespaced_pod, "default")).items)
    await asyncio.sleep(0.3)  # a periodic snapshot has it all
    await sim.stop()

    again = KubeSim(profile, snapshot=snapshot, default_scheduler=True)
    await again.start()
    try:
        apps, batch, core = clients(again)
        await until(lambda: apps.read_namespaced_deployment("web", "default").status
                    .ready_replicas == 2)
        after = sorted(p.metadata.name for p in (await asyncio.to_thread(
            core.list_namespaced_pod, "default")).items)
        assert after == before and len(after) == 4
        job = await asyncio.to_thread(batch.read_namespaced_job, "two", "default")
        assert (job.status.succeeded, job.status.failed) == (2, 0)
        assert conditions(job)["Complete"] == "True"
    finally:
        await again.stop()
