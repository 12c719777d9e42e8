"""Org units in the scheduler's state (pure, no I/O): nodes into pools by label, queues from
projects and departments, requests from the effective spec, queue status payloads."""

from datetime import UTC, datetime

import pytest

from fairway_contracts.events import (
    DepartmentChanged,
    NodePoolChanged,
    PoolResources,
    ProjectChanged,
    QueueStatusChanged,
    Quota,
    WorkloadSubmitted,
)
from fairway_contracts.quantities import memory_mib
from fairway_contracts.workloads import EffectiveSpec, Phase, WorkloadType
from fairway_scheduler import core
from fairway_scheduler.core.cluster import (
    ClusterState,
    PodStatus,
    WorkloadRequest,
    WorkloadStatus,
)
from fairway_scheduler.service import queue_payload

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def node(name: str, reported: str = "default") -> core.Node:
    return core.Node(name, reported, True, 8)


@pytest.mark.parametrize(("quantity", "mib"), [
    (None, 0), ("", 0), ("512Mi", 512), ("16Gi", 16384), ("1G", 954), ("1048576", 1),
    ("1.5Gi", 1536), ("junk", 0),
])
def test_memory_quantities_in_mib(quantity, mib):
    assert memory_mib(quantity) == mib


def test_nodes_join_the_pool_whose_label_they_carry_else_default():
    state = ClusterState()
    state.put_node(node("a1", reported="a100"), {"fairway.io/node-pool": "a100"})
    state.put_node(node("t1", reported="t4"), {"gpu": "t4"})
    # No pool definitions yet: the inventory's pool stands; `default` alone changes nothing.
    assert {n.name: n.pool for n in state.snapshot().nodes} == {"a1": "a100", "t1": "t4"}
    state.put_node_pool(NodePoolChanged(event_id="0", name="default"))
    assert {n.name: n.pool for n in state.snapshot().nodes} == {"a1": "a100", "t1": "t4"}

    state.put_node_pool(NodePoolChanged(event_id="1", name="tesla", label_key="gpu",
                                        label_value="t4", gpu_placement_strategy="spread"))
    snapshot = state.snapshot()
    assert {n.name: n.pool for n in snapshot.nodes} == {"a1": "default", "t1": "tesla"}
    assert snapshot.pools == (core.NodePool("default"), core.NodePool("tesla", "spread",
                                                                       "binpack"))

    state.put_node_pool(NodePoolChanged(event_id="2", name="tesla", deleted=True))
    assert {n.name: n.pool for n in state.snapshot().nodes} == {"a1": "a100", "t1": "t4"}


def test_queues_from_projects_and_departments():
    state = ClusterState()
    state.put_department(DepartmentChanged(
        event_id="d", department_id="d1", name="research",
        resources=[PoolResources(node_pool="a100", gpu=Quota(deserved=24))]))
    state.put_project(ProjectChanged(
        event_id="p", project_id="p1", name="team-a", department_id="d1",
        resources=[PoolResources(node_pool="a100",
                                 gpu=Quota(deserved=8, limit=16, over_quota_weight=2),
                                 cpu=Quota(deserved=4), memory=Quota(deserved=1024))],
        default_node_pools=["a100"]))
    state.put_project(ProjectChanged(event_id="q", project_id="p2", name="team-b",
                                      department_id="d1"))

    assert state.queue_specs() == (
        core.QueueSpec("research", "department", "a100", None, core.Quota(24, -1, 1)),
        core.QueueSpec("team-a", "project", "a100", "research", core.Quota(8, 16, 2),
                       core.Quota(4000, -1, 1), core.Quota(1024, -1, 1)),
        core.QueueSpec("team-b", "project", "default", "research"),
    )
    assert state.org_id("project", "team-a") == "p1"
    assert state.org_id("department", "research") == "d1"
    assert state.org_id("project", "unknown") is None

    # A workload with no pools of its own goes to its project's default pools.
    state.add_request(WorkloadRequest(id="w1", project="team-a", priority_class="train",
                                      priority=50, preemptible=True, node_pools=(), pods=1,
                                      min_pods=1, gpus_per_pod=1, submitted_at=T0))
    state.apply_status(WorkloadStatus("w1", "team-a", 1, Phase.PENDING, (PodStatus("w1-0"),)),
                       released=())
    assert state.snapshot().workloads[0].node_pools == ("a100",)

    state.put_project(ProjectChanged(event_id="p", project_id="p1", name="team-a",
                                      deleted=True))
    assert [s.name for s in state.queue_specs()] == ["research", "team-b"]


def test_queues_carry_when_their_unit_was_created_so_ties_go_to_the_older():
    state = ClusterState()
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    # "zeta" was created first: it is the older queue although its name sorts last.
    for pid, name, created in (("p1", "zeta", early), ("p2", "alpha", late)):
        state.put_project(ProjectChanged(
            event_id=pid, project_id=pid, name=name, created_at=created,
            resources=[PoolResources(node_pool="default", gpu=Quota(deserved=0))]))
    assert {s.name: s.created_at for s in state.queue_specs()} == {"zeta": early,
                                                                  "alpha": late}
    # One GPU, both at nothing allocated: the next one goes to the older queue.
    state.put_node(core.Node("n1", "default", True, 1))
    for wid, project in (("w-alpha", "alpha"), ("w-zeta", "zeta")):
        state.add_request(WorkloadRequest(id=wid, project=project, priority_class="train",
                                          priority=50, preemptible=True, node_pools=(),
                                          pods=1, min_pods=1, gpus_per_pod=1,
                                          submitted_at=T0))
        state.apply_status(WorkloadStatus(wid, project, 1, Phase.PENDING,
                                          (PodStatus(f"{wid}-0"),)), released=())
    result = core.decide(state.snapshot(T0))
    assert [p.workload_id for p in result.placements] == ["w-zeta"]


def test_a_request_carries_cpu_and_memory_from_the_effective_spec():
    event = WorkloadSubmitted(
        event_id="e", workload_id="w1", name="job", project="team-a", project_id="p1",
        workload_type=WorkloadType.TRAINING, created_at=T0, created_by="alice",
        spec=EffectiveSpec(image="x", priority_class="train", preemptible=True, backoff_limit=6,
                           compute={"gpu_devices_request": 1, "cpu_core_request": 0.5,
                                    "cpu_memory_request": "2Gi"}))
    request = WorkloadRequest.from_event(event, {})
    assert (request.cpu_millis, request.memory_mib, request.project_id) == (500, 2048, "p1")
    assert request.gpu_portion is None  # fractions are not in the effective spec yet


def test_an_unknown_project_gets_the_default_queue_and_status_payloads_validate():
    state = ClusterState()
    state.put_node(node("n1"))
    state.add_request(WorkloadRequest(id="w1", project="newbie", priority_class="train",
                                      priority=50, preemptible=True, node_pools=(), pods=1,
                                      min_pods=1, gpus_per_pod=2, submitted_at=T0))
    state.apply_status(WorkloadStatus("w1", "newbie", 1, Phase.PENDING, (PodStatus("w1-0"),)),
                       released=())
    result = core.allocate(state.snapshot())
    assert [p.workload_id for p in result.placements] == ["w1"]
    [status] = result.queues
    payload = queue_payload(status, state.org_id(status.kind, status.name))
    event = QueueStatusChanged(**payload, changed_at=T0)
    assert (event.kind, event.name, event.node_pool, event.org_id) == (
        "project", "newbie", "default", None)
    assert (event.gpu.deserved, event.gpu.limit, event.gpu.over_quota_weight,
            event.gpu.allocated, event.gpu.requested) == (0, -1, 1, 2, 2)


def test_a_name_that_cannot_be_a_subject_token_is_skipped_not_fatal():
    from fairway_contracts import subjects
    from fairway_scheduler.service import _subject

    assert _subject(subjects.queue_status, "project", "team-a", "a100") == (
        "fairway.scheduler.queue.project.team-a.a100")
    assert _subject(subjects.queue_status, "project", "team-a", "a100.large") is None


def test_a_pools_topology_reaches_the_snapshot_with_the_labels_that_name_its_levels():
    state = ClusterState()
    rack = "topology.fairway.io/rack"
    state.put_node(node("n1"), {rack: "r1", "kubernetes.io/hostname": "n1", "other": "x"})
    state.put_node(node("n2"), {"other": "y"})
    assert [n.labels for n in state.snapshot().nodes] == [(), ()]  # no topology: none kept
    state.put_node_pool(NodePoolChanged(event_id="1", name="default",
                                        topology_levels=[rack, "kubernetes.io/hostname"]))
    snapshot = state.snapshot()
    assert snapshot.pools == (core.NodePool("default",
                                            topology=(rack, "kubernetes.io/hostname")),)
    assert {n.name: n.labels for n in snapshot.nodes} == {
        "n1": ((rack, "r1"), ("kubernetes.io/hostname", "n1")), "n2": ()}


def test_a_request_carries_its_topology_placement_to_the_workload():
    event = WorkloadSubmitted(
        event_id="e", workload_id="w1", name="job", project="team-a", project_id="p1",
        workload_type=WorkloadType.DISTRIBUTED, created_at=T0, created_by="alice",
        spec=EffectiveSpec(image="x", priority_class="train", preemptible=True, backoff_limit=6,
                           pods=4, min_pods=4,
                           topology={"required_placement": "rack",
                                     "preferred_placement": "kubernetes.io/hostname"}))
    request = WorkloadRequest.from_event(event, {})
    assert (request.topology_required, request.topology_preferred) == (
        "rack", "kubernetes.io/hostname")
    state = ClusterState()
    state.add_request(request)
    state.apply_status(WorkloadStatus("w1", "team-a", 1, Phase.PENDING, tuple(
        PodStatus(f"job-{i}") for i in range(4))), ())
    [workload] = state.snapshot().workloads
    assert (workload.topology_required, workload.topology_preferred) == (
        "rack", "kubernetes.io/hostname")
