"""The pod grouper (core/grouping.py) as tables: owner walks, a grouper per kind, project,
priority and preemptibility, ids, and grouping many pods into workloads."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fairway_lifecycle.core.grouping import (
    THIRD_PARTY,
    Owner,
    OwnerRef,
    group_pod,
    group_pods,
    is_third_party,
    owner_from_object,
    top_owner,
    workload_id,
)

NS_LABELS = {"fairway.io/project": "team-a"}


def ref(kind: str, name: str, uid: str | None = None, controller: bool = True,
        api_version: str = "apps/v1") -> dict[str, Any]:
    return {"kind": kind, "name": name, "uid": uid or f"uid-{name}", "controller": controller,
            "apiVersion": api_version}


def pod(name: str, *refs: dict[str, Any], labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, scheduler: str = "fairway",
        priority_class: str | None = None, ns: str = "team-a") -> dict[str, Any]:
    spec: dict[str, Any] = {"schedulerName": scheduler, "containers": [{"name": "m"}]}
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}",
                         "labels": labels or {}, "annotations": annotations or {},
                         "ownerReferences": list(refs)},
            "spec": spec}


def owner(kind: str, name: str, *refs: OwnerRef, spec: dict[str, Any] | None = None,
          labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
          api_version: str = "apps/v1") -> Owner:
    return Owner(kind=kind, name=name, uid=f"uid-{name}", namespace="team-a",
                 api_version=api_version, owner_references=refs, labels=labels or {},
                 annotations=annotations or {}, spec=spec or {})


def oref(kind: str, name: str, controller: bool = True) -> OwnerRef:
    return OwnerRef(kind=kind, name=name, uid=f"uid-{name}", controller=controller)


def known(*owners: Owner) -> dict[str, Owner]:
    return {o.uid: o for o in owners}


DEPLOY = owner("Deployment", "web", spec={"replicas": 3})
RS = owner("ReplicaSet", "web-7f9c", oref("Deployment", "web"), spec={"replicas": 3})
CRON = owner("CronJob", "nightly", api_version="batch/v1")
CRON_JOB = owner("Job", "nightly-123", oref("CronJob", "nightly"), api_version="batch/v1",
                 spec={"parallelism": 2})
LOOP_A = owner("Thing", "a", oref("Thing", "b"))
LOOP_B = owner("Thing", "b", oref("Thing", "a"))
OWNERS = known(DEPLOY, RS, CRON, CRON_JOB, LOOP_A, LOOP_B)


@pytest.mark.parametrize(("the_pod", "expected"), [
    (pod("bare"), ("Pod", "bare")),
    (pod("web-7f9c-x", ref("ReplicaSet", "web-7f9c")), ("Deployment", "web")),
    # an owner the caller does not know is known by its reference alone
    (pod("api-5d-x", ref("ReplicaSet", "api-5d")), ("ReplicaSet", "api-5d")),
    (pod("db-0", ref("StatefulSet", "db")), ("StatefulSet", "db")),
    # each run of a CronJob is a workload of its own
    (pod("nightly-123-x", ref("Job", "nightly-123", api_version="batch/v1")),
     ("Job", "nightly-123")),
    # a loop in the references ends the walk instead of spinning
    (pod("looped", ref("Thing", "a")), ("Thing", "b")),
    # the controller reference is followed, not the first one
    (pod("two", ref("ConfigMap", "cm", controller=False), ref("ReplicaSet", "web-7f9c")),
     ("Deployment", "web")),
    # without a controller reference, the first one
    (pod("first", ref("Thing", "x", controller=False), ref("Other", "y", controller=False)),
     ("Thing", "x")),
])
def test_the_walk_reaches_the_top_owner(the_pod: dict[str, Any],
                                        expected: tuple[str, str]) -> None:
    top = top_owner(the_pod, OWNERS)
    assert (top.kind, top.name) == expected


JOB = "batch/v1"
KF = "kubeflow.org/v1"
PYTORCH_SPEC = {"pytorchReplicaSpecs": {"Master": {"replicas": 1}, "Worker": {"replicas": 3}}}


@pytest.mark.parametrize(("top", "pod_annotations", "expected"), [
    # a Job: pods one by one, unless asked for a gang
    (owner("Job", "j", spec={"parallelism": 4}, api_version=JOB), {}, ("single", 1)),
    (owner("Job", "j", spec={"parallelism": 4}, annotations={"fairway.io/gang": "true"},
           api_version=JOB), {}, ("gang", 4)),
    (owner("Job", "j", spec={"parallelism": 4}, api_version=JOB),
     {"fairway.io/gang": "True"}, ("gang", 4)),
    (owner("Job", "j", spec={"parallelism": 4}, api_version=JOB),
     {"fairway.io/min-members": "2"}, ("gang", 2)),
    # a gang of one is a single pod
    (owner("Job", "j", spec={}, annotations={"fairway.io/gang": "true"}, api_version=JOB),
     {}, ("single", 1)),
    (owner("Job", "j", spec={"parallelism": 3}, api_version=JOB),
     {"fairway.io/min-members": "1"}, ("single", 1)),
    # Deployments, ReplicaSets and StatefulSets: elastic, with the set's minimum
    (owner("Deployment", "d", spec={"replicas": 3}), {}, ("elastic", 1)),
    (owner("Deployment", "d", spec={"replicas": 3},
           annotations={"fairway.io/min-members": "2"}), {}, ("elastic", 2)),
    (owner("ReplicaSet", "r", spec={"replicas": 2}), {}, ("elastic", 1)),
    (owner("StatefulSet", "s", spec={"replicas": 3}, labels={"fairway.io/min-members": "3"}),
     {}, ("elastic", 3)),
    # a PyTorchJob: master and workers as one gang, or its minAvailable
    (owner("PyTorchJob", "p", spec=PYTORCH_SPEC, api_version=KF), {}, ("gang", 4)),
    (owner("PyTorchJob", "p", spec={**PYTORCH_SPEC, "runPolicy": {
        "schedulingPolicy": {"minAvailable": 2}}}, api_version=KF), {}, ("gang", 2)),
    (owner("PyTorchJob", "p", spec={"pytorchReplicaSpecs": {"Worker": {"replicas": 2}}},
           api_version=KF), {}, ("gang", 2)),
    (owner("PyTorchJob", "p", spec={"pytorchReplicaSpecs": {"Worker": {}}}, api_version=KF),
     {}, ("single", 1)),
    # anything else: its top owner, one by one unless min-members asks for a gang
    (owner("RayCluster", "ray", api_version="ray.io/v1"), {}, ("single", 1)),
    (owner("RayCluster", "ray", api_version="ray.io/v1"),
     {"fairway.io/min-members": "3"}, ("gang", 3)),
    (owner("RayCluster", "ray", api_version="ray.io/v1"),
     {"fairway.io/min-members": "1"}, ("single", 1)),
    # a minimum that is no positive number is not one
    (owner("RayCluster", "ray", annotations={"fairway.io/min-members": "0"}), {},
     ("single", 1)),
    (owner("Deployment", "d", annotations={"fairway.io/min-members": "many"}), {},
     ("elastic", 1)),
])
def test_a_grouper_per_kind(top: Owner, pod_annotations: dict[str, str],
                            expected: tuple[str, int]) -> None:
    the_pod = pod("p-0", ref(top.kind, top.name, api_version=top.api_version),
                  annotations=pod_annotations)
    workload = group_pod(the_pod, known(top), NS_LABELS)
    assert (workload.grouping, workload.min_members) == expected
    assert (workload.kind, workload.name, workload.owner_uid) == (top.kind, top.name, top.uid)
    assert workload.api_version == top.api_version and workload.type == THIRD_PARTY


@pytest.mark.parametrize(("top", "pod_annotations", "expected"), [
    (owner("Deployment", "d", spec={"replicas": 5}), {}, (5, "elastic", 1)),
    (owner("Deployment", "d", spec={"replicas": 0}), {}, (0, "elastic", 1)),
    (owner("StatefulSet", "s", spec={}), {}, (1, "elastic", 1)),  # the API's default
    # a gang Job scaled (its parallelism edited): the gang follows
    (owner("Job", "j", spec={"parallelism": 6}, annotations={"fairway.io/gang": "true"},
           api_version=JOB), {}, (6, "gang", 6)),
    (owner("PyTorchJob", "p", spec=PYTORCH_SPEC, api_version=KF), {}, (4, "gang", 4)),
    (owner("RayCluster", "ray", api_version="ray.io/v1"), {}, (None, "single", 1)),
])
def test_the_pods_an_owner_wants_follow_its_scale(top: Owner, pod_annotations: dict[str, str],
                                                  expected: tuple) -> None:
    the_pod = pod("p-0", ref(top.kind, top.name, api_version=top.api_version),
                  annotations=pod_annotations)
    workload = group_pod(the_pod, known(top), NS_LABELS)
    assert (workload.replicas, workload.grouping, workload.min_members) == expected
    assert group_pod(pod("solo"), {}, NS_LABELS).replicas == 1


def test_a_bare_pod_is_its_own_workload() -> None:
    workload = group_pod(pod("solo"), {}, NS_LABELS)
    assert (workload.kind, workload.name, workload.grouping, workload.min_members) == (
        "Pod", "solo", "single", 1)
    assert workload.pods == ("solo",) and workload.id == workload_id("uid-solo")


@pytest.mark.parametrize(("pod_labels", "namespace_labels", "project", "problem"), [
    ({}, {"fairway.io/project": "team-a"}, "team-a", None),
    ({"fairway.io/project": "team-b"}, {"fairway.io/project": "team-a"}, "team-b", None),
    ({"fairway.io/project": "team-b"}, {}, "team-b", None),
    ({}, {"runai/queue": "team-a"}, None, "namespace team-a belongs to no project"),
    ({}, {}, None, "namespace team-a belongs to no project"),
])
def test_the_project_comes_from_the_pod_or_its_namespace(
        pod_labels: dict[str, str], namespace_labels: dict[str, str], project: str | None,
        problem: str | None) -> None:
    workload = group_pod(pod("p", labels=pod_labels), {}, namespace_labels)
    assert workload.project == project
    if problem is None:
        assert workload.problem is None
    else:
        assert workload.problem is not None and workload.problem.startswith(problem)
        assert "fairway.io/project" in workload.problem


LABELLED = owner("Deployment", "d", labels={"fairway.io/priority-class": "inference"})


@pytest.mark.parametrize(("the_pod", "owners", "expected"), [
    (pod("p"), {}, ("train", 50, True)),  # the default: train, preemptible
    (pod("p", priority_class="high"), {}, ("high", 125, False)),
    (pod("p", priority_class="build"), {}, ("build", 100, False)),
    (pod("p", priority_class="low"), {}, ("low", 40, True)),
    # a Kubernetes priority class that is not one of Fairway's: the label, else the default
    (pod("p", priority_class="system-cluster-critical"), {}, ("train", 50, True)),
    (pod("p", priority_class="system-cluster-critical",
         labels={"fairway.io/priority-class": "very-high"}), {}, ("very-high", 150, False)),
    (pod("p", labels={"fairway.io/priority-class": "medium"}), {}, ("medium", 80, True)),
    (pod("p", labels={"fairway.io/priority-class": "nonsense"}), {}, ("train", 50, True)),
    # the top owner's label, when the pod has none
    (pod("p", ref("Deployment", "d")), known(LABELLED), ("inference", 125, False)),
    # preemptibility asked for explicitly, either way
    (pod("p", priority_class="high", labels={"fairway.io/preemptibility": "preemptible"}), {},
     ("high", 125, True)),
    (pod("p", labels={"fairway.io/preemptibility": "non-preemptible"}), {},
     ("train", 50, False)),
    (pod("p", ref("Deployment", "d")),
     known(owner("Deployment", "d", labels={"fairway.io/preemptibility": "non-preemptible"})),
     ("train", 50, False)),
    (pod("p", labels={"fairway.io/preemptibility": "sometimes"}), {}, ("train", 50, True)),
])
def test_priority_and_preemptibility(the_pod: dict[str, Any], owners: dict[str, Owner],
                                     expected: tuple[str, int, bool]) -> None:
    workload = group_pod(the_pod, owners, NS_LABELS)
    assert (workload.priority_class, workload.priority, workload.preemptible) == expected


def test_the_id_is_derived_from_the_top_owner_alone() -> None:
    a = group_pod(pod("web-7f9c-a", ref("ReplicaSet", "web-7f9c")), OWNERS, NS_LABELS)
    b = group_pod(pod("web-7f9c-b", ref("ReplicaSet", "web-7f9c")), OWNERS, NS_LABELS)
    assert a.id == b.id == workload_id("uid-web") == str(uuid.UUID(a.id))
    assert uuid.UUID(a.id).version == 5 and a.id != workload_id("uid-web-7f9c")


@pytest.mark.parametrize(("the_pod", "expected"), [
    (pod("theirs"), True),
    (pod("ours", labels={"fairway.io/workload-id": "w-1"}), False),
    (pod("default", scheduler="default-scheduler"), False),
    ({"metadata": {"name": "empty"}}, False),
])
def test_which_pods_are_third_party(the_pod: dict[str, Any], expected: bool) -> None:
    assert is_third_party(the_pod) is expected


def test_many_pods_make_one_workload_per_top_owner() -> None:
    job = owner("Job", "train", spec={"parallelism": 2}, annotations={"fairway.io/gang": "true"},
                api_version=JOB)
    other_rs = owner("ReplicaSet", "web-11aa", oref("Deployment", "web"))
    pods = [
        pod("web-7f9c-a", ref("ReplicaSet", "web-7f9c")),
        pod("web-11aa-b", ref("ReplicaSet", "web-11aa")),  # a second ReplicaSet, one owner
        pod("train-x", ref("Job", "train", api_version=JOB)),
        pod("train-y", ref("Job", "train", api_version=JOB)),
        pod("solo"),
        pod("elsewhere", ns="team-z"),
        pod("ours", labels={"fairway.io/workload-id": "w-1"}),
        pod("not-ours", scheduler="default-scheduler"),
    ]
    workloads = group_pods(pods, {**OWNERS, **known(job, other_rs)},
                           {"team-a": NS_LABELS})
    summary = [(w.namespace, w.kind, w.name, w.grouping, w.min_members, w.pods, w.project)
               for w in workloads]
    assert summary == [
        ("team-a", "Deployment", "web", "elastic", 1, ("web-11aa-b", "web-7f9c-a"), "team-a"),
        ("team-a", "Job", "train", "gang", 2, ("train-x", "train-y"), "team-a"),
        ("team-a", "Pod", "solo", "single", 1, ("solo",), "team-a"),
        ("team-z", "Pod", "elsewhere", "single", 1, ("elsewhere",), None),
    ]
    assert workloads[3].problem is not None and "team-z" in workloads[3].problem
    assert group_pods([], OWNERS, {}) == []


def test_an_owner_from_a_kubernetes_object() -> None:
    obj = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
           "metadata": {"name": "bert", "namespace": "team-a", "uid": "u-1",
                        "labels": {"fairway.io/priority-class": "high"},
                        "ownerReferences": [{"kind": "Workflow", "name": "wf", "uid": "u-0",
                                             "apiVersion": "argoproj.io/v1alpha1"},
                                            {"kind": "Broken", "name": "no-uid"}]},
           "spec": PYTORCH_SPEC}
    top = owner_from_object(obj)
    assert (top.kind, top.name, top.uid, top.namespace, top.api_version) == (
        "PyTorchJob", "bert", "u-1", "team-a", "kubeflow.org/v1")
    assert top.owner_references == (OwnerRef(kind="Workflow", name="wf", uid="u-0",
                                              api_version="argoproj.io/v1alpha1"),)
    the_pod = pod("bert-master-0", ref("PyTorchJob", "bert", uid="u-1", api_version=KF))
    workload = group_pod(the_pod, {"u-1": top}, NS_LABELS)
    # the walk goes on to the Workflow (known by its reference only): anything else
    assert (workload.kind, workload.name, workload.grouping) == ("Workflow", "wf", "single")
    assert workload.priority_class == "train"  # the Workflow has no label; the pod neither
