"""Fixtures for the metrics service's tests: the real NATS and PostgreSQL, a throwaway
database, and durable consumers of the test's own that see only the test's project.

The servers come from the suite's `infra` fixture (tests/conftest.py): embedded ones, or those
FAIRWAY_TEST_NATS_URL / FAIRWAY_TEST_DATABASE_URL name.
"""

import asyncio
import time
import uuid
from dataclasses import replace

import nats
import pytest

from fairway_bus.bootstrap import consumer_config
from fairway_contracts import streams, subjects
from fairway_devstack.testing import fresh_database
from fairway_metrics.service import MetricsConsumers


@pytest.fixture
def database_url(infra):
    """A database of its own for every test (the suite's default is one per module): the
    tests count rows."""
    with fresh_database(infra[1]) as url:
        yield url


def test_consumers(tag: str, project: str) -> MetricsConsumers:
    """Every metrics consumer, renamed for this test and narrowed to its own subjects: its
    project, department `d-<tag>`, node pool `pool-<tag>`, nodes `n1-<tag>`/`n2-<tag>`,
    dead letters of consumer `dl-<tag>`."""
    p = subjects.PREFIX

    def spec(base, *filters: str):
        return replace(base, durable=f"test-{base.durable}-{tag}", filter_subjects=filters)

    return MetricsConsumers(
        workloads=spec(streams.METRICS_WORKLOADS, f"{p}.workload.submitted.{project}.>"),
        phases=spec(streams.METRICS_PHASES, f"{p}.phase.{project}.>"),
        queues=spec(streams.METRICS_QUEUES, f"{p}.scheduler.queue.project.{project}.>",
                    f"{p}.scheduler.queue.department.d-{tag}.>"),
        pending=spec(streams.METRICS_PENDING, f"{p}.scheduler.pending.{project}.>"),
        preemptions=spec(streams.METRICS_PREEMPTIONS, f"{p}.scheduler.preempt.{project}.>"),
        inventory=spec(streams.METRICS_INVENTORY, f"{p}.inventory.node.n1-{tag}",
                       f"{p}.inventory.node.n2-{tag}"),
        projects=spec(streams.METRICS_PROJECTS, f"{p}.org.project.pid-{tag}"),
        departments=spec(streams.METRICS_DEPARTMENTS, f"{p}.org.department.did-{tag}"),
        node_pools=spec(streams.METRICS_NODEPOOLS, f"{p}.org.nodepool.pool-{tag}"),
        utilization=spec(streams.METRICS_UTILIZATION, f"{p}.utilization.{project}.>"),
        serving=spec(streams.METRICS_SERVING, f"{p}.serving.{project}.>"),
        dead_letters=spec(streams.METRICS_DEADLETTERS, f"{p}.deadletter.dl-{tag}"),
        thirdparty=spec(streams.METRICS_THIRDPARTY,
                        f"{p}.thirdparty.workload.{third_party_id(tag)}"),
    )


def third_party_id(tag: str) -> str:
    """The one third-party workload a test's consumers read."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"third-party-{tag}"))


@pytest.fixture
async def consumers(js, tag: str, project: str):
    """The metrics consumers, renamed for this test and narrowed to its subjects."""
    specs = test_consumers(tag, project)
    await create_consumers(js, specs)
    yield specs
    await delete_consumers(js, specs)
    for spec in specs.all():
        for subject in spec.filter_subjects:
            await js.purge_stream(spec.stream, subject=subject)


async def create_consumers(js, specs: MetricsConsumers) -> None:
    for spec in specs.all():
        await js.add_consumer(spec.stream, consumer_config(spec))


async def delete_consumers(js, specs: MetricsConsumers) -> None:
    for spec in specs.all():
        try:
            await js.delete_consumer(spec.stream, spec.durable)
        except nats.js.errors.NotFoundError:
            pass


@pytest.fixture
def replay_consumers(js):
    """Delete and re-create consumers: every stored message is delivered again, same ids."""

    async def replay(specs: MetricsConsumers) -> None:
        await delete_consumers(js, specs)
        await create_consumers(js, specs)

    return replay


@pytest.fixture
def drained(js, consumers):
    """Wait until the test's consumers have handled everything they hold."""

    async def wait(timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            infos = [await js.consumer_info(spec.stream, spec.durable)
                     for spec in consumers.all()]
            if not any(info.num_pending or info.num_ack_pending for info in infos):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"consumers not drained within {timeout}s")
            await asyncio.sleep(0.05)

    return wait
