"""Lifecycle's autoscaling loop against a real PostgreSQL and a real HTTP metrics endpoint (in
Prometheus text, as kubesim or Prometheus' federation serve it), with Kubernetes stood in for:
the count it decides is recorded (and read back after a restart), the replica pods follow,
and the serving status goes out through the outbox."""

import json

import pytest
from aiohttp import web

from fairway_contracts import EffectiveSpec, Phase, WorkloadType
from fairway_contracts.events import WorkloadSubmitted
from fairway_contracts.workloads import utcnow
from fairway_lifecycle import repository as repo
from fairway_lifecycle.core.autoscaler import Window
from fairway_lifecycle.scaling import Autoscaler
from tests.lifecycle.test_controller import FakeKube, started, until

pytestmark = pytest.mark.infra


class ServingKube(FakeKube):
    async def ensure_object(self, manifest):
        self.calls.append(("object", manifest["kind"], manifest["metadata"]["name"]))
        return "created"


@pytest.fixture
async def service(database_url):
    runtime, service = await started(database_url, ServingKube())
    yield service
    await runtime.stop()


@pytest.fixture
async def load():
    """A metrics endpoint whose requests per second the test sets: {workload id: rps}."""
    rates: dict[str, float] = {}

    async def metrics(request):
        lines = [f'fairway_serving_requests_per_second{{workload_id="{w}"}} {r}'
                 for w, r in rates.items()]
        lines += [f'fairway_serving_pod_throughput{{workload_id="{w}",pod="p"}} {r}'
                  for w, r in rates.items()]
        return web.Response(text="\n".join(lines) + "\n")

    app = web.Application()
    app.router.add_get("/metrics/serving", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield rates, f"http://127.0.0.1:{port}/metrics/serving"
    await runner.cleanup()


async def test_the_count_is_recorded_the_replicas_follow_and_the_status_is_published(
        service, load, tag):
    rates, url = load
    wid = f"{tag}-srv"
    spec = EffectiveSpec.model_validate({
        "image": "vllm", "priorityClass": "inference", "preemptible": False, "backoffLimit": 6,
        "servingPort": 8000, "autoscaling": {"minReplicas": 1, "maxReplicas": 3,
                                             "metric": "throughput", "metricThreshold": 10}})
    await service.submit(WorkloadSubmitted(
        event_id=wid, workload_id=wid, name="llm", project="team-a", project_id="7",
        workload_type=WorkloadType.INFERENCE, created_at=utcnow(), created_by="ml",
        spec=spec), {})
    kube = service.controller.kube
    await until(lambda: ("create", f"llm-{wid[:8]}-1-0") in kube.calls)
    assert ("object", "Service", f"llm-{wid[:8]}") in kube.calls
    # as its replica's pod events would record it (no kubelet here)
    service.controller.tracked[wid].row.phase = Phase.RUNNING
    scaler = Autoscaler(service.runtime, service.controller, metrics_url=url,
                        period_seconds=1, window=Window(metric_seconds=5,
                                                        scale_down_seconds=30))

    rates[wid] = 25.0
    await scaler.tick(100.0)

    async with service.runtime.pool.acquire() as conn:
        assert (await repo.get(conn, wid)).spec.pods == 3  # what a restart reads back
        statuses = [json.loads(bytes(r["payload"])) for r in await conn.fetch(
            "SELECT payload FROM outbox WHERE subject = $1 ORDER BY id",
            f"fairway.serving.team-a.{wid}")]
    await until(lambda: {f"llm-{wid[:8]}-1-1", f"llm-{wid[:8]}-1-2"} <= {
        c[1] for c in kube.calls if c[0] == "create"})
    [status] = statuses
    assert (status["desiredReplicas"], status["readyReplicas"]) == (3, 0)
    assert status["endpoint"] == f"http://llm-{wid[:8]}.fairway-team-a.svc.cluster.local"
    assert status["requestsPerSecond"] == 25 and status["metricValue"] == 25

    await scaler.tick(101.0)  # nothing changed: nothing published again
    async with service.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE subject = $1",
                                   f"fairway.serving.team-a.{wid}") == 1


async def test_an_unreadable_metric_keeps_the_count(service, tag):
    wid = f"{tag}-srv2"
    spec = EffectiveSpec.model_validate({
        "image": "vllm", "priorityClass": "inference", "preemptible": False, "backoffLimit": 6,
        "pods": 2, "minPods": 2, "autoscaling": {"minReplicas": 2, "maxReplicas": 4,
                                                 "metric": "concurrency",
                                                 "metricThreshold": 1}})
    await service.submit(WorkloadSubmitted(
        event_id=wid, workload_id=wid, name="llm", project="team-a", project_id="7",
        workload_type=WorkloadType.INFERENCE, created_at=utcnow(), created_by="ml",
        spec=spec), {})
    scaler = Autoscaler(service.runtime, service.controller,
                        metrics_url="http://127.0.0.1:9/nothing-listens-here",
                        period_seconds=1, window=Window())

    await scaler.tick(5.0)

    assert service.controller.tracked[wid].row.spec.pods == 2
