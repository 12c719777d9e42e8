"""The metrics service against real NATS JetStream and PostgreSQL: events in, the series on
/metrics show them; a redelivery counts once; a restart rebuilds the current counts."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from fairway_bus import publish_model
from fairway_contracts import subjects
from fairway_contracts.events import PhaseChanged, ThirdPartyWorkloadChanged, WorkloadSubmitted
from fairway_contracts.workloads import EffectiveSpec, Phase, PodSummary, WorkloadType
from fairway_metrics.app import build
from fairway_metrics.settings import MetricsSettings
from tests.metrics.conftest import third_party_id

pytestmark = pytest.mark.infra

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def submitted(wid: str, project: str, workload_type: WorkloadType, seconds: float = 0
              ) -> WorkloadSubmitted:
    return WorkloadSubmitted(
        event_id=f"sub-{wid}", workload_id=wid, name=f"w-{wid[:6]}", project=project,
        project_id=f"id-{project}", workload_type=workload_type,
        created_at=T0 + timedelta(seconds=seconds), created_by="alice",
        spec=EffectiveSpec(image="x", priority_class="train", preemptible=True, backoff_limit=6),
    )


def phase_changed(wid: str, project: str, workload_type: WorkloadType, sequence: int,
                  phase: Phase, seconds: float) -> PhaseChanged:
    return PhaseChanged(
        event_id=f"ph-{wid}-{sequence}", workload_id=wid, name=f"w-{wid[:6]}", project=project,
        workload_type=workload_type, sequence=sequence, previous_phase=None, phase=phase,
        reason=phase.value, message="", time=T0 + timedelta(seconds=seconds),
    )


@pytest.fixture
async def start_metrics(nats_url: str, database_url: str, consumers):
    started = []

    async def start():
        service = build(MetricsSettings(nats_url=nats_url, database_url=database_url),
                        consumers=consumers)
        await service.start(serve_http=True)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.ready:
            await service.stop()


async def scrape(service) -> dict[tuple[str, tuple], float]:
    """Every sample the service serves on /metrics, by (name, sorted labels)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{service.http_port}/metrics")
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def workloads(samples, project: str, phase: str, workload_type: str) -> float:
    return samples[("fairway_workloads", (("department", ""), ("phase", phase),
                                          ("project", project), ("type", workload_type)))]


def transitions(samples, phase: str) -> float:
    return samples[("fairway_phase_transitions_total", (("phase", phase),))]


def latency(samples, which: str, part: str, workload_type: str) -> float:
    name = f"fairway_workload_submit_to_{which}_seconds_{part}"
    return samples.get((name, (("type", workload_type),)), 0.0)


async def test_events_in_series_out_and_repeats_count_once(
        js, project, consumers, drained, replay_consumers, start_metrics):
    training, workspace, early = (str(uuid.uuid4()) for _ in range(3))
    TRAINING, WORKSPACE = WorkloadType.TRAINING, WorkloadType.WORKSPACE

    async def publish(event, msg_id: str) -> None:
        subject = (subjects.workload_submitted(event.project, event.workload_id)
                   if isinstance(event, WorkloadSubmitted)
                   else subjects.phase(event.project, event.workload_id, event.phase))
        await publish_model(js, subject, event, msg_id=msg_id)

    service = await start_metrics()
    before = await scrape(service)

    # A training that runs 10 s after its submission, degrades, runs again and completes at 70 s.
    await publish(submitted(training, project, TRAINING), f"sub-{training}")
    for sequence, phase, seconds in [(1, Phase.CREATING, 1), (2, Phase.PENDING, 2),
                                     (3, Phase.RUNNING, 10), (4, Phase.DEGRADED, 20),
                                     (5, Phase.RUNNING, 25), (6, Phase.COMPLETED, 70)]:
        await publish(phase_changed(training, project, TRAINING, sequence, phase, seconds),
                      f"ph-{training}-{sequence}")
    # A workspace that waits.
    await publish(submitted(workspace, project, WORKSPACE), f"sub-{workspace}")
    for sequence, phase, seconds in [(1, Phase.CREATING, 1), (2, Phase.PENDING, 2)]:
        await publish(phase_changed(workspace, project, WORKSPACE, sequence, phase, seconds),
                      f"ph-{workspace}-{sequence}")
    # A training whose Running arrives before its submission (submitted at 5 s, running at 20 s).
    await publish(phase_changed(early, project, TRAINING, 1, Phase.RUNNING, 20),
                  f"ph-{early}-1")
    await publish(submitted(early, project, TRAINING, seconds=5), f"sub-{early}")
    await drained()

    def check(samples) -> None:
        assert workloads(samples, project, "Completed", "training") == 1
        assert workloads(samples, project, "Running", "training") == 1
        assert workloads(samples, project, "Pending", "workspace") == 1
        assert workloads(samples, project, "Running", "workspace") == 0
        # never a workload id in a label: one series per workload would grow without bound
        assert not any(value in (training, workspace, early) for _, labels in samples
                       for _, value in labels)

    def check_counted_once(samples) -> None:
        for phase, count in [("Creating", 2), ("Pending", 2), ("Running", 3), ("Degraded", 1),
                             ("Completed", 1)]:
            assert transitions(samples, phase) - transitions(before, phase) == count, phase
        assert (latency(samples, "running", "count", "training")
                - latency(before, "running", "count", "training")) == 2
        assert (latency(samples, "running", "sum", "training")
                - latency(before, "running", "sum", "training")) == 10 + 15
        assert (latency(samples, "completed", "count", "training")
                - latency(before, "completed", "count", "training")) == 1
        assert (latency(samples, "completed", "sum", "training")
                - latency(before, "completed", "sum", "training")) == 70

    after = await scrape(service)
    check(after)
    check_counted_once(after)

    # Every message delivered again with its original id: nothing counts twice.
    await replay_consumers(consumers)
    await drained()
    check_counted_once(await scrape(service))

    # A restart rebuilds the current counts from the projections.
    await service.stop()
    service = await start_metrics()
    check(await scrape(service))


async def test_a_failed_batch_leaves_nothing_and_its_events_count_once_when_retried(
        js, project, consumers, drained, start_metrics, monkeypatch):
    """The phases of a fetch are applied together; when writing them fails, the transaction
    and the in-memory projection keep nothing of the batch, and the events handled again one
    by one count once each."""
    from fairway_metrics import repository

    wid = str(uuid.uuid4())
    TRAINING = WorkloadType.TRAINING
    await publish_model(js, subjects.workload_submitted(project, wid),
                        submitted(wid, project, TRAINING), msg_id=f"sub-{wid}")
    steps = [(1, Phase.PENDING, 1), (2, Phase.RUNNING, 4), (3, Phase.COMPLETED, 9)]
    for sequence, phase, seconds in steps:
        await publish_model(js, subjects.phase(project, wid, phase),
                            phase_changed(wid, project, TRAINING, sequence, phase, seconds),
                            msg_id=f"ph-{wid}-{sequence}")

    save, failed = repository.save_workloads, []

    async def save_but_fail_the_first_whole_batch(conn, views):
        views = list(views)
        await save(conn, views)  # written, then rolled back with the rest
        if views and views[0].phase == "Completed" and not failed:
            failed.append(True)
            raise ConnectionError("lost the database mid-batch")

    def counted() -> list[float | None]:  # the process's counters, read before the start too
        return [REGISTRY.get_sample_value("fairway_phase_transitions_total", {"phase": phase})
                for phase in ("Pending", "Running", "Completed")] + [
            REGISTRY.get_sample_value("fairway_workload_submit_to_running_seconds_count",
                                      {"type": "training"}) or 0.0]

    monkeypatch.setattr(repository, "save_workloads", save_but_fail_the_first_whole_batch)
    before = counted()
    service = await start_metrics()
    await drained()
    assert failed, "the batch failed once"
    assert [a - b for a, b in zip(counted(), before, strict=True)] == [1, 1, 1, 1]
    assert workloads(await scrape(service), project, "Completed", "training") == 1


async def test_replicas_serve_every_event_from_the_tables(
        js, project, consumers, drained, start_metrics, nats_url, database_url):
    """Replicas share the consumers, each applying part of the events: a replica that applied
    none serves them all after a refresh from the tables."""
    from fairway_metrics.service import MetricsService

    wid = str(uuid.uuid4())
    service = await start_metrics()
    await publish_model(js, subjects.workload_submitted(project, wid),
                        submitted(wid, project, WorkloadType.TRAINING), msg_id=f"sub-{wid}")
    for sequence, phase, seconds in [(1, Phase.CREATING, 1), (2, Phase.RUNNING, 5)]:
        await publish_model(js, subjects.phase(project, wid, phase),
                            phase_changed(wid, project, WorkloadType.TRAINING, sequence, phase,
                                          seconds), msg_id=f"ph-{wid}-{sequence}")
    await drained()
    settings = MetricsSettings(nats_url=nats_url, database_url=database_url,
                               FAIRWAY_METRICS_REFRESH_SECONDS=1,
                               FAIRWAY_METRICS_SAMPLE_INTERVAL_SECONDS=3600)
    readers = [MetricsService(service, settings) for _ in range(2)]
    for reader in readers:  # none of them consumed anything
        assert wid not in reader.projection.workloads
        await reader.refresh()
        assert reader.projection.workloads[wid].phase == Phase.RUNNING


async def test_third_party_workloads_count_under_their_own_type(
        js, project, tag, consumers, drained, start_metrics):
    wid = third_party_id(tag)
    service = await start_metrics()

    def announced(phase: Phase, seconds: float, node: str | None) -> ThirdPartyWorkloadChanged:
        return ThirdPartyWorkloadChanged(
            event_id=f"tp-{wid}-{seconds}", workload_id=wid, kind="Deployment",
            api_version="apps/v1", name="web", namespace="ml", owner_uid="u", grouping="elastic",
            min_members=1, project=project, priority_class="train", priority=50,
            preemptible=True, pods=["web-1"], replicas=1, gpus_per_pod=1, phase=phase,
            pod_summaries=[PodSummary(name="web-1", node=node, gpus=1 if node else 0,
                                      phase="Running" if node else "Pending")],
            observed_at=T0 + timedelta(seconds=seconds))

    # its request reaches the scheduler as a training's: still counted as thirdParty
    request = submitted(wid, project, WorkloadType.TRAINING).model_copy(
        update={"third_party": True})
    await publish_model(js, subjects.workload_submitted(project, wid), request,
                        msg_id=request.event_id)
    for phase, seconds, node in [(Phase.PENDING, 1, None), (Phase.RUNNING, 5, "n1")]:
        event = announced(phase, seconds, node)
        await publish_model(js, subjects.thirdparty_workload(wid), event, msg_id=event.event_id)
    await drained()
    samples = await scrape(service)
    assert workloads(samples, project, "Running", "thirdParty") == 1
    assert ("fairway_workloads", (("department", ""), ("phase", "Running"), ("project", project),
                                  ("type", "training"))) not in samples
