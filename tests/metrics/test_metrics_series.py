"""Every series of the metrics service from real events over NATS JetStream into PostgreSQL:
organisation, nodes, queue status, workloads with pods, pending reasons, preemptions,
utilization, dead letters; then the telemetry queries over request/reply and the stored
samples; and a restart that shows the same values from the tables."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import nats
import pytest

from fairway_bus import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import (
    DeadLetter,
    DepartmentChanged,
    NodeInventory,
    NodePoolChanged,
    PhaseChanged,
    PoolResources,
    PreemptDecision,
    ProjectChanged,
    QueueStatusChanged,
    Quota,
    ResourceStatus,
    SchedulingPending,
    ServingChanged,
    WorkloadSubmitted,
    WorkloadUtilization,
)
from fairway_contracts.telemetry import (
    MetricsQuery,
    MetricsReply,
    MetricType,
    TelemetryGroupBy,
    TelemetryQuery,
    TelemetryReply,
    TelemetryType,
)
from fairway_contracts.workloads import (
    Compute,
    EffectiveSpec,
    Phase,
    PodSummary,
    WorkloadType,
    utcnow,
)
from fairway_metrics.service import QuerySubjects
from fairway_metrics.settings import MetricsSettings
from fairway_metrics.testing import build_for_tests
from tests.metrics.test_metrics_service import scrape

pytestmark = pytest.mark.infra


def status(deserved, fair_share, allocated, non_preemptible, requested, limit=-1.0):
    return ResourceStatus(deserved=deserved, limit=limit, over_quota_weight=1,
                          fair_share=fair_share, allocated=allocated,
                          allocated_non_preemptible=non_preemptible, requested=requested)


def zero():
    return status(0, 0, 0, 0, 0)


@pytest.fixture
def query_subjects(tag: str) -> QuerySubjects:
    return QuerySubjects(telemetry=f"test.metrics.telemetry.{tag}",
                         series=f"test.metrics.series.{tag}")


@pytest.fixture
async def start_metrics(nats_url: str, database_url: str, consumers, query_subjects):
    started = []

    async def start():
        settings = MetricsSettings(nats_url=nats_url, database_url=database_url,
                                   sample_interval_seconds=3600)
        service, metrics = build_for_tests(settings, consumers=consumers,
                                           query_subjects=query_subjects)
        await service.start(serve_http=True)
        started.append(service)
        return service, metrics

    yield start
    for service in started:
        if service.ready:
            await service.stop()


def value(samples, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no {key}; have {[k for k in samples if k[0] == name]}"
    return samples[key]


@dataclass(frozen=True)
class Scene:
    """One test's organisation, cluster and workloads, named after its tag."""

    tag: str
    project: str
    now: datetime = field(default_factory=utcnow)
    running: str = field(default_factory=lambda: str(uuid.uuid4()))
    waiting: str = field(default_factory=lambda: str(uuid.uuid4()))
    failed: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def pool(self) -> str:
        return f"pool-{self.tag}"

    @property
    def dept(self) -> str:
        return f"d-{self.tag}"

    @property
    def n1(self) -> str:
        return f"n1-{self.tag}"

    @property
    def n2(self) -> str:
        return f"n2-{self.tag}"

    @property
    def pid(self) -> str:
        return f"pid-{self.tag}"

    @property
    def did(self) -> str:
        return f"did-{self.tag}"


async def test_every_series_from_events(js, tag, project, consumers, drained, start_metrics,
                                        query_subjects, nats_url):
    scene = Scene(tag, project)
    service, metrics = await start_metrics()

    async def publish(subject, event, msg_id=None):
        await publish_model(js, subject, event, msg_id=msg_id or uuid.uuid4().hex)

    await publish_organisation_and_cluster(publish, scene)
    await publish_workloads(publish, scene)
    await drained()
    check_series(await scrape(service), scene)

    nc = await nats.connect(nats_url)
    try:
        await check_queries(nc, query_subjects, metrics, scene)
    finally:
        await nc.close()

    # a restart shows the same, from the tables
    await service.stop()
    service, _ = await start_metrics()
    check_series(await scrape(service), scene)


async def publish_organisation_and_cluster(publish, scene: Scene) -> None:
    """The organisation, nodes and the scheduler's queue status."""
    pool, dept, n1, n2, pid, did = (scene.pool, scene.dept, scene.n1, scene.n2, scene.pid,
                                    scene.did)
    project, now = scene.project, scene.now
    await publish(subjects.org_department(did), DepartmentChanged(
        event_id="d1", department_id=did, name=dept,
        resources=[PoolResources(node_pool=pool, gpu=Quota(deserved=8))]))
    await publish(subjects.org_project(pid), ProjectChanged(
        event_id="p1", project_id=pid, name=project, department_id=did,
        resources=[PoolResources(node_pool=pool, gpu=Quota(deserved=4))]))
    await publish(subjects.org_node_pool(pool), NodePoolChanged(
        event_id="np1", name=pool, label_key="pool", label_value=pool))
    for node, ready in ((n1, True), (n2, False)):
        await publish(subjects.node_inventory(node), NodeInventory(
            name=node, node_pool="as-lifecycle-saw-it", ready=ready, gpus=8,
            labels={"pool": pool}, observed_at=now))
    await publish(subjects.queue_status("project", project, pool), QueueStatusChanged(
        kind="project", name=project, org_id=pid, parent=dept, node_pool=pool,
        gpu=status(4, 6, 3, 1, 5, limit=8), cpu=zero(), memory=zero(), changed_at=now))
    await publish(subjects.queue_status("department", dept, pool), QueueStatusChanged(
        kind="department", name=dept, org_id=did, node_pool=pool,
        gpu=status(8, 8, 3, 1, 5), cpu=zero(), memory=zero(), changed_at=now))


async def publish_workloads(publish, scene: Scene) -> None:
    """Three workloads (running, waiting, failed after a preemption), their utilization, and a
    dead letter."""
    pool, project, pid, n1, now, tag = (scene.pool, scene.project, scene.pid, scene.n1,
                                        scene.now, scene.tag)
    running, waiting, failed = scene.running, scene.waiting, scene.failed
    # a distributed workload of three pods holding 3 GPUs, running since 60 s ago
    def submitted(wid, workload_type, pods, gpus):
        return WorkloadSubmitted(
            event_id=f"s-{wid}", workload_id=wid, name=f"w-{wid[:6]}", project=project,
            project_id=pid, workload_type=workload_type, created_at=now - timedelta(minutes=5),
            created_by="alice", spec=EffectiveSpec(
                image="x", priority_class="train", preemptible=True, backoff_limit=0,
                pods=pods, node_pools=[pool], compute=Compute(gpu_devices_request=gpus)))

    def phase(wid, workload_type, sequence, ph, ago, pods=()):
        return PhaseChanged(
            event_id=f"p-{wid}-{sequence}", workload_id=wid, name="w", project=project,
            workload_type=workload_type, sequence=sequence, previous_phase=None, phase=ph,
            reason=ph.value, message="", time=now - timedelta(seconds=ago), pods=list(pods))

    D, T, W = WorkloadType.DISTRIBUTED, WorkloadType.TRAINING, WorkloadType.WORKSPACE
    gang = [PodSummary(name=f"g-{i}", node=n1, phase="Running", ready=True, gpus=1)
            for i in range(3)]
    await publish(subjects.workload_submitted(project, running), submitted(running, D, 3, 1))
    for seq, ph, ago in ((1, Phase.CREATING, 100), (2, Phase.PENDING, 90),
                         (3, Phase.RUNNING, 60)):
        await publish(subjects.phase(project, running, ph),
                      phase(running, D, seq, ph, ago, gang if ph is Phase.RUNNING else ()))
    # a workspace waiting for 2 GPUs for 30 s, over its fair share
    await publish(subjects.workload_submitted(project, waiting), submitted(waiting, W, 1, 2))
    for seq, ph, ago in ((1, Phase.CREATING, 40), (2, Phase.PENDING, 30)):
        await publish(subjects.phase(project, waiting, ph), phase(waiting, W, seq, ph, ago))
    await publish(subjects.scheduling_pending(project, waiting), SchedulingPending(
        workload_id=waiting, project=project, code="OverFairShare", message="m",
        changed_at=now))
    # a training that failed after being preempted
    await publish(subjects.workload_submitted(project, failed), submitted(failed, T, 1, 1))
    for seq, ph, ago in ((1, Phase.CREATING, 50), (2, Phase.PENDING, 45),
                         (3, Phase.RUNNING, 40), (4, Phase.FAILED, 20)):
        pods = [PodSummary(name="f-0", node=n1, phase="Running", gpus=1)]
        await publish(subjects.phase(project, failed, ph), phase(failed, T, seq, ph, ago, pods))
    decision = PreemptDecision(decision_id=f"dec-{tag}", workload_id=failed, project=project,
                               reason="reclaim", message="m", decided_at=now)
    for _ in range(2):  # a repeated decision counts once
        await publish(subjects.preempt(project, failed), decision,
                      msg_id=f"{uuid.uuid4().hex}")
    await publish(subjects.utilization(project, running), WorkloadUtilization(
        event_id="u1", workload_id=running, name="w", project=project, workload_type=D,
        node_pool=pool, gpus=3, utilization_percent=40, idle=False,
        window_start=now - timedelta(seconds=30), window_end=now))
    # an inference server with no GPU, running, its autoscaler at 3 replicas (2 ready yet)
    server = str(uuid.uuid5(uuid.NAMESPACE_URL, f"srv-{tag}"))
    inference = WorkloadType.INFERENCE
    await publish(subjects.workload_submitted(project, server), submitted(server, inference, 1,
                                                                          0))
    for seq, ph, ago in ((1, Phase.CREATING, 20), (2, Phase.RUNNING, 10)):
        await publish(subjects.phase(project, server, ph), phase(server, inference, seq, ph,
                                                                 ago))
    for ready in (1, 2):  # the stream's newest status is the server's state
        await publish(subjects.serving(project, server), ServingChanged(
            event_id=f"s{ready}", workload_id=server, name="llm", project=project,
            sequence=ready, endpoint="http://llm.ns.svc.cluster.local", desired_replicas=3,
            ready_replicas=ready, min_replicas=0, max_replicas=4, metric="throughput",
            metric_threshold=10, metric_value=25.0, requests_per_second=25.0, time=now))
    await publish(subjects.deadletter(f"dl-{tag}"), DeadLetter(
        consumer=f"dl-{tag}", stream="S", subject="x", stream_sequence=7, deliveries=8,
        error="boom", payload="{}", failed_at=now))


def check_series(s, scene: Scene) -> None:
    """Every series the scene should show on /metrics."""
    project, dept, pool, n1, n2, tag = (scene.project, scene.dept, scene.pool, scene.n1,
                                        scene.n2, scene.tag)
    common = {"project": project, "department": dept}
    assert value(s, "fairway_workloads", **common, type="distributed", phase="Running") == 1
    server = {**common, "workload": "llm"}
    assert value(s, "fairway_inference_replicas_desired", **server) == 3
    assert value(s, "fairway_inference_replicas_ready", **server) == 2
    assert value(s, "fairway_inference_requests_per_second", **server) == 25
    assert value(s, "fairway_inference_autoscaling_metric", **server, metric="throughput") == 25
    assert value(s, "fairway_workloads", **common, type="workspace", phase="Pending") == 1
    assert value(s, "fairway_workloads", **common, type="training", phase="Failed") == 1
    assert value(s, "fairway_workloads", **common, type="training", phase="Running") == 0
    assert value(s, "fairway_workload_gpus_requested", **common, node_pool=pool,
                 type="distributed") == 3
    assert value(s, "fairway_workload_gpus_requested", **common, node_pool=pool,
                 type="workspace") == 2
    assert value(s, "fairway_workload_gpus_requested", **common, node_pool=pool,
                 type="training") == 0  # finished: asks for nothing
    assert value(s, "fairway_workload_gpus_allocated", **common, node_pool=pool,
                 type="distributed") == 3  # three pods, one workload
    assert value(s, "fairway_workloads_pending", **common, reason="OverFairShare") == 1
    assert value(s, "fairway_workload_oldest_pending_seconds", **common) >= 30
    assert value(s, "fairway_workload_oldest_in_phase_seconds", **common,
                 phase="Pending") >= 30
    assert ("fairway_workload_oldest_in_phase_seconds", tuple(sorted(
        {**common, "phase": "Running"}.items()))) not in s  # Running is where it should be
    assert value(s, "fairway_workload_pending_seconds_total", **common,
                 type="distributed") == pytest.approx(30)
    assert value(s, "fairway_workload_running_seconds_total", **common,
                 type="training") == pytest.approx(20)
    assert value(s, "fairway_workload_running_seconds_total", **common,
                 type="distributed") >= 60
    assert value(s, "fairway_preemptions_total", **common, reason="reclaim") == 1
    assert value(s, "fairway_dead_letters_total", consumer=f"dl-{tag}") == 1
    q = {"project": project, "department": dept, "node_pool": pool}
    for name, expected in (("deserved", 4), ("limit", 8), ("fair_share", 6),
                           ("allocated", 3), ("allocated_non_preemptible", 1),
                           ("requested", 5), ("over_quota_weight", 1),
                           ("utilization", 40)):
        assert value(s, f"fairway_project_gpu_{name}", **q) == expected, name
    d = {"department": dept, "node_pool": pool}
    assert value(s, "fairway_department_gpu_deserved", **d) == 8
    assert value(s, "fairway_department_gpu_fair_share", **d) == 8
    assert value(s, "fairway_department_gpu_utilization", **d) == 40
    assert ("fairway_department_gpu_limit", tuple(sorted(d.items()))) not in s  # no limit
    assert value(s, "fairway_node_gpus", node=n1, node_pool=pool) == 8
    assert value(s, "fairway_node_ready", node=n2, node_pool=pool) == 0
    assert value(s, "fairway_node_gpus_allocated", node=n1, node_pool=pool) == 3
    assert value(s, "fairway_node_gpu_utilization", node=n1, node_pool=pool) == 15  # 40*3/8
    assert value(s, "fairway_nodepool_nodes", node_pool=pool, ready="true") == 1
    assert value(s, "fairway_nodepool_nodes", node_pool=pool, ready="false") == 1
    assert value(s, "fairway_nodepool_gpus", node_pool=pool) == 8  # ready nodes only
    assert value(s, "fairway_nodepool_gpus_allocated", node_pool=pool) == 3
    assert value(s, "fairway_nodepool_gpu_utilization", node_pool=pool) == 15
    assert value(s, "fairway_cluster_gpus") == 8
    assert value(s, "fairway_cluster_gpus_allocated") == 3
    assert value(s, "fairway_cluster_gpu_utilization") == 15
    assert value(s, "fairway_cluster_nodes", ready="false") == 1
    for _, labels in s:
        assert not any(v in (scene.running, scene.waiting, scene.failed) for _, v in labels)


async def check_queries(nc, query_subjects: QuerySubjects, metrics, scene: Scene) -> None:
    """Telemetry over request/reply; samples stored and read back as time series."""
    pool, project, pid, now = scene.pool, scene.project, scene.pid, scene.now

    async def ask(query: TelemetryQuery) -> TelemetryReply:
        msg = await nc.request(query_subjects.telemetry, query.to_json(), timeout=5)
        return TelemetryReply.model_validate_json(msg.data)

    count = await ask(TelemetryQuery(telemetry_type=TelemetryType.WORKLOADS_COUNT,
                                     group_by=[TelemetryGroupBy.TYPE], project_ids=[pid]))
    assert {v.groups[0].value: v.value for v in count.values} == {
        "distributed": "1", "workspace": "1", "training": "1", "inference": "1"}
    for kind, expected in ((TelemetryType.INFERENCE_DESIRED_REPLICAS, "3"),
                           (TelemetryType.INFERENCE_READY_REPLICAS, "2"),
                           (TelemetryType.INFERENCE_REQUESTS_PER_SECOND, "25")):
        replicas = await ask(TelemetryQuery(telemetry_type=kind,
                                            group_by=[TelemetryGroupBy.PROJECT],
                                            project_ids=[pid]))
        [(value, groups)] = [(v.value, [(g.key, g.name) for g in v.groups])
                             for v in replicas.values]
        assert (value, groups) == (expected, [("project", project), ("workload", "llm")])
    elsewhere = await ask(TelemetryQuery(telemetry_type=TelemetryType.INFERENCE_READY_REPLICAS,
                                         project_ids=["nobody"]))
    assert elsewhere.values == []
    gpus = await ask(TelemetryQuery(
        telemetry_type=TelemetryType.GPU_ALLOCATION,
        group_by=[TelemetryGroupBy.PROJECT, TelemetryGroupBy.NODEPOOL], project_ids=[pid]))
    assert [(v.value, [(g.key, g.value, g.name) for g in v.groups]) for v in gpus.values] == [
        ("3", [("project", pid, project), ("nodepool", pool, pool)])]
    wait = await ask(TelemetryQuery(telemetry_type=TelemetryType.PENDING_TIME_DISTRIBUTION,
                                    project_ids=[pid]))
    assert {v.groups[-1].value: v.value for v in wait.values}["0-1m"] == "1"
    outside = await ask(TelemetryQuery(telemetry_type=TelemetryType.WORKLOADS_COUNT,
                                       project_ids=["nobody"]))
    assert [v.value for v in outside.values] == ["0"]
    bad = await nc.request(query_subjects.telemetry, b'{"telemetryType": "NOPE"}', timeout=5)
    assert TelemetryReply.model_validate_json(bad.data).error.field == "telemetryType"

    # samples, stored and read back as time series
    assert await metrics.take_samples() > 0
    series_query = MetricsQuery(scope="project", scope_id=pid, metric_types=[
        MetricType.GPU_QUOTA, MetricType.GPU_ALLOCATION, MetricType.GPU_UTILIZATION],
        start=now - timedelta(minutes=1), end=utcnow() + timedelta(seconds=1),
        number_of_samples=5)
    msg = await nc.request(query_subjects.series, series_query.to_json(), timeout=5)
    reply = MetricsReply.model_validate_json(msg.data)
    assert {m.type: [v.value for v in m.values] for m in reply.measurements} == {
        MetricType.GPU_QUOTA: ["4"], MetricType.GPU_ALLOCATION: ["3"],
        MetricType.GPU_UTILIZATION: ["40"]}
    pool_query = series_query.model_copy(update={
        "scope": "nodepool", "scope_id": pool,
        "metric_types": [MetricType.GPU_CAPACITY, MetricType.GPU_ALLOCATION]})
    msg = await nc.request(query_subjects.series, pool_query.to_json(), timeout=5)
    reply = MetricsReply.model_validate_json(msg.data)
    assert {m.type: [v.value for v in m.values] for m in reply.measurements} == {
        MetricType.GPU_CAPACITY: ["8"], MetricType.GPU_ALLOCATION: ["3"]}


def test_downsampling_averages_windows():
    from fairway_metrics.core.queries import downsample

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    query = MetricsQuery(scope="project", scope_id="1", metric_types=[MetricType.GPU_QUOTA],
                         start=t0, end=t0 + timedelta(seconds=100), number_of_samples=2)
    rows = [("GPU_QUOTA", t0 + timedelta(seconds=s), v) for s, v in
            ((10, 1.0), (20, 3.0), (60, 5.0), (100, 7.0))]
    [measurement] = downsample(query, rows, {"projectId": "1"})
    assert [(v.value, v.timestamp) for v in measurement.values] == [
        ("2", t0 + timedelta(seconds=20)), ("6", t0 + timedelta(seconds=100))]
