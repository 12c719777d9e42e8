"""Fixtures for the metrics service's tests: the real NATS and PostgreSQL, a throwaway
database, and durable consumers of the test's own that see only the test's project.

The servers come from the suite's `infra` fixture (tests/conftest.py): embedded ones, or those
FAIRWAY_TEST_NATS_URL / FAIRWAY_TEST_DATABASE_URL name.
"""

import asyncio
import time
from dataclasses import replace

import nats
import pytest

from fairway_bus.bootstrap import consumer_config
from fairway_contracts import streams, subjects
from fairway_devstack.testing import fresh_database
from fairway_metrics.handlers import MetricsConsumers


@pytest.fixture
def database_url(infra):
    """A database of its own for every test (the suite's default is one per module): the
    tests count rows."""
    with fresh_database(infra[1]) as url:
        yield url


@pytest.fixture
async def consumers(js, tag: str, project: str):
    """The metrics consumers, renamed for this test and narrowed to its project."""
    specs = MetricsConsumers(
        workloads=replace(streams.METRICS_WORKLOADS, durable=f"test-metrics-workloads-{tag}",
                          filter_subjects=(f"{subjects.PREFIX}.workload.submitted.{project}.>",)),
        phases=replace(streams.METRICS_PHASES, durable=f"test-metrics-phases-{tag}",
                       filter_subjects=(f"{subjects.PREFIX}.phase.{project}.>",)),
    )
    await create_consumers(js, specs)
    yield specs
    await delete_consumers(js, specs)
    await js.purge_stream(streams.WORKLOADS.name,
                          subject=f"{subjects.PREFIX}.workload.submitted.{project}.>")
    await js.purge_stream(streams.PHASES.name, subject=f"{subjects.PREFIX}.phase.{project}.>")


async def create_consumers(js, specs: MetricsConsumers) -> None:
    for spec in (specs.workloads, specs.phases):
        await js.add_consumer(spec.stream, consumer_config(spec))


async def delete_consumers(js, specs: MetricsConsumers) -> None:
    for spec in (specs.workloads, specs.phases):
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
                     for spec in (consumers.workloads, consumers.phases)]
            if not any(info.num_pending or info.num_ack_pending for info in infos):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"consumers not drained within {timeout}s")
            await asyncio.sleep(0.05)

    return wait
