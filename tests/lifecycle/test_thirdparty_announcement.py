"""Third-party announcements (core/thirdparty.py): which owners still need reading, and the
event of a workload, whose id names its content (pure)."""

from datetime import UTC, datetime, timedelta

import pytest

from fairway_lifecycle.core.grouping import Owner, OwnerRef, group_pods
from fairway_lifecycle.core.thirdparty import (
    Fraction,
    announcement,
    missing_owners,
    pod_fraction,
    pods_to_tell,
    third_party_phase,
    waiting_condition,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ref(kind: str, name: str, api_version: str = "apps/v1") -> dict:
    return {"kind": kind, "name": name, "uid": f"uid-{name}", "controller": True,
            "apiVersion": api_version}


def pod(name: str, *refs: dict, gpu: str = "1") -> dict:
    return {"metadata": {"name": name, "namespace": "team-a", "labels": {},
                         "ownerReferences": list(refs)},
            "spec": {"schedulerName": "fairway", "containers": [{"name": "m", "resources": {
                "limits": {"nvidia.com/gpu": gpu}, "requests": {"cpu": "2"}}}]}}


def owner(kind: str, name: str, *refs: OwnerRef) -> Owner:
    return Owner(kind=kind, name=name, uid=f"uid-{name}", namespace="team-a",
                 api_version="apps/v1", owner_references=refs)


def test_the_owner_chain_is_read_one_level_at_a_time_until_known():
    pods = [pod("web-abc-1", ref("ReplicaSet", "web-abc"))]
    assert set(missing_owners(pods, {}, set())) == {"uid-web-abc"}
    rs = owner("ReplicaSet", "web-abc", OwnerRef("Deployment", "web", "uid-web", "apps/v1"))
    wanted = missing_owners(pods, {rs.uid: rs}, set())
    assert list(wanted) == ["uid-web"]
    assert wanted["uid-web"][0] == "team-a"
    deploy = owner("Deployment", "web")
    assert missing_owners(pods, {rs.uid: rs, deploy.uid: deploy}, set()) == {}


def test_an_unreadable_owner_is_not_asked_for_again_and_a_loop_ends():
    pods = [pod("p", ref("Thing", "t", "example.com/v1"))]
    assert missing_owners(pods, {}, {"uid-t"}) == {}
    a = owner("A", "a", OwnerRef("B", "b", "uid-b"))
    b = owner("B", "b", OwnerRef("A", "a", "uid-a"))
    assert missing_owners([pod("p", ref("A", "a"))], {a.uid: a, b.uid: b}, set()) == {}


def test_an_announcement_carries_what_one_pod_asks_and_its_id_names_its_content():
    pods = {n: pod(n, ref("ReplicaSet", "web-abc"), gpu="2") for n in ("w-1", "w-2")}
    rs = owner("ReplicaSet", "web-abc")
    [workload] = group_pods(pods.values(), {rs.uid: rs}, {"team-a": {
        "fairway.io/project": "team-a"}})
    event = announcement(workload, pods, T0)
    assert (event.kind, event.name, event.namespace, event.project) == (
        "ReplicaSet", "web-abc", "team-a", "team-a")
    assert (event.grouping, event.min_members, event.pods) == ("elastic", 1, ["w-1", "w-2"])
    assert (event.gpus_per_pod, event.cpu_millis, event.memory_mib) == (2, 2000, 0)
    assert not event.gone
    # the same content later: the same id (JetStream keeps one); other content: another
    assert announcement(workload, pods, T0 + timedelta(seconds=5)).event_id == event.event_id
    [fewer] = group_pods([pods["w-1"]], {rs.uid: rs}, {"team-a": {}})
    other = announcement(fewer, pods, T0)
    assert other.event_id != event.event_id
    assert other.project is None and "belongs to no project" in other.problem


def running(p: dict, node: str = "n1", phase: str = "Running") -> dict:
    ready = phase == "Running"
    return {**p, "spec": {**p["spec"], "nodeName": node}, "status": {
        "phase": phase, "conditions": [{"type": "Ready", "status": str(ready)},
                                       {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "m", "ready": ready, "state": {
            "running": {}} if ready else {"terminated": {"exitCode": 0 if phase == "Succeeded"
                                                          else 1, "reason": "Error"}}}]}}


def workload_of(kind: str, *pods: dict, project: bool = True):
    refs = [ref(kind, "own", "batch/v1")] if kind != "Pod" else []
    members = [{**p, "metadata": {**p["metadata"], "ownerReferences": refs}} for p in pods]
    [workload] = group_pods(members, {}, {"team-a": {"fairway.io/project": "team-a"}
                                          if project else {}})
    return workload, members


def test_phases_come_from_the_pods_by_the_same_fold():
    w, pods = workload_of("Job", pod("a"), pod("b"))
    assert third_party_phase(w, pods).reason == "WaitingForScheduler"
    w, pods = workload_of("Job", running(pod("a")), running(pod("b")))
    assert third_party_phase(w, pods).phase == "Running"
    w, pods = workload_of("Job", running(pod("a"), phase="Succeeded"),
                          running(pod("b"), phase="Succeeded"))
    assert third_party_phase(w, pods).phase == "Completed"
    # a Deployment's pods do not complete: it runs until deleted
    w, pods = workload_of("Deployment", running(pod("a")))
    assert third_party_phase(w, pods).phase == "Running"
    # a failed pod its Job replaces does not fail the workload; the last one left does
    w, pods = workload_of("Job", running(pod("a"), phase="Failed"), pod("b"))
    assert third_party_phase(w, pods).reason == "WaitingForScheduler"
    w, pods = workload_of("Job", running(pod("a"), phase="Failed"))
    assert third_party_phase(w, pods).phase == "Failed"
    # its messages name its kind, not a native type
    assert third_party_phase(w, pods).message.startswith("The Job failed"), \
        third_party_phase(w, pods).message
    broken = pod("a")
    broken["status"] = {"phase": "Pending", "containerStatuses": [{"name": "m", "state": {
        "waiting": {"reason": "CreateContainerConfigError", "message": "no secret x"}}}]}
    w, pods = workload_of("Deployment", broken)
    result = third_party_phase(w, pods)
    assert result.message == "The Deployment cannot start: pod a: no secret x.", result


def test_no_project_waits_with_the_reason():
    w, pods = workload_of("Pod", pod("solo"), project=False)
    result = third_party_phase(w, pods)
    assert (result.phase, result.reason) == ("Pending", "NoProject")
    assert "belongs to no project" in result.message
    event = announcement(w, {p["metadata"]["name"]: p for p in pods}, T0)
    assert (event.phase, event.phase_reason) == ("Pending", "NoProject")
    assert [s.name for s in event.pod_summaries] == ["solo"]


def test_waiting_pods_are_told_why_once_as_kube_scheduler_would():
    said = waiting_condition("OverFairShare", "project a is over its fair share", T0)
    assert said == {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "OverFairShare: project a is over its fair share",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}
    waiting, told, bound, going = (pod(n, ref("ReplicaSet", "web-abc"))
                                   for n in ("w-1", "w-2", "w-3", "w-4"))
    told["status"] = {"conditions": [said]}
    bound["spec"]["nodeName"] = "node-1"
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pods_to_tell([waiting, told, bound, going], said) == ["w-1"]
    # a new reason is told again
    other = waiting_condition("OverLimit", "project a is at its limit", T0)
    assert pods_to_tell([waiting, told], other) == ["w-1", "w-2"]


def annotated(notes: dict[str, str], gpu: str = "0") -> dict:
    the_pod = pod("frac-1", gpu=gpu)
    the_pod["metadata"]["annotations"] = notes
    return the_pod


@pytest.mark.parametrize(("notes", "gpu", "expected"), [
    ({"gpu-fraction": "0.5"}, "0", Fraction(portion=0.5)),
    ({"fairway.io/gpu-fraction": " 0.25 "}, "0", Fraction(portion=0.25)),
    ({"gpu-memory": "10240"}, "0", Fraction(memory_mib=10240)),
    ({"fairway.io/gpu-memory": "4096"}, "0", Fraction(memory_mib=4096)),
    ({}, "0", None),
    ({"gpu-fraction": "0.5"}, "1", None),  # whole GPUs asked: they count alone
    ({"gpu-fraction": "1"}, "0", Fraction(problem='annotation gpu-fraction: "1" is not a '
                                          'fraction of a GPU: it must be a number between 0 '
                                          'and 1, such as "0.5"')),
    ({"gpu-fraction": "half"}, "0", Fraction(problem='annotation gpu-fraction: "half" is not a '
                                             'fraction of a GPU: it must be a number between '
                                             '0 and 1, such as "0.5"')),
    ({"gpu-fraction": "nan"}, "0", Fraction(problem='annotation gpu-fraction: "nan" is not a '
                                            'fraction of a GPU: it must be a number between 0 '
                                            'and 1, such as "0.5"')),
    ({"gpu-memory": "10Gi"}, "0", Fraction(problem='annotation gpu-memory: "10Gi" is not an '
                                           'amount of GPU memory: it must be a positive whole '
                                           'number of MiB, such as "10240"')),
    ({"gpu-memory": "0"}, "0", Fraction(problem='annotation gpu-memory: "0" is not an amount '
                                        'of GPU memory: it must be a positive whole number of '
                                        'MiB, such as "10240"')),
    ({"gpu-fraction": "0.5", "gpu-memory": "100"}, "0", Fraction(
        problem='annotations gpu-fraction: "0.5" and gpu-memory: "100" both ask for a '
                'fraction of a GPU: keep one')),
])
def test_a_fraction_by_annotation(notes: dict[str, str], gpu: str, expected) -> None:
    assert pod_fraction(annotated(notes, gpu)) == expected


def test_a_fraction_is_announced_and_a_bad_one_waits_naming_the_annotation():
    [workload] = group_pods([annotated({"gpu-fraction": "0.5"})], {}, {"team-a": {
        "fairway.io/project": "team-a"}})
    event = announcement(workload, {"frac-1": annotated({"gpu-fraction": "0.5"})}, T0)
    assert (event.gpus_per_pod, event.gpu_portion, event.gpu_memory_mib) == (0, 0.5, None)
    assert event.problem is None

    bad = annotated({"gpu-memory": "lots"})
    [workload] = group_pods([bad], {}, {"team-a": {"fairway.io/project": "team-a"}})
    event = announcement(workload, {"frac-1": bad}, T0)
    assert (event.phase, event.phase_reason) == ("Pending", "InvalidGpuFraction")
    assert event.problem == event.phase_message
    assert 'annotation gpu-memory: "lots"' in event.phase_message
