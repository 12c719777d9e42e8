"""Fixtures for the scheduler's tests: the real NATS and PostgreSQL, a throwaway database, and
durable consumers of the test's own that see only the test's project.

The servers come from the suite's `infra` fixture (tests/conftest.py): embedded ones, or those
FAIRWAY_TEST_NATS_URL / FAIRWAY_TEST_DATABASE_URL name.
"""

import asyncio
import time
import uuid
from dataclasses import replace

import nats
import pytest

from fairway_bus.bootstrap import consumer_config, ensure_streams_and_consumers
from fairway_contracts import streams, subjects
from fairway_devstack.testing import fresh_database
from fairway_scheduler.handlers import SchedulerConsumers


@pytest.fixture
def database_url(infra):
    """A database of its own for every test (the suite's default is one per module): the
    tests count rows."""
    with fresh_database(infra[1]) as url:
        yield url


@pytest.fixture
async def js(nats_url: str):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams_and_consumers(js)
    yield js
    await nc.close()


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def project(tag: str) -> str:
    return f"p-{tag}"


@pytest.fixture
def pool(tag: str) -> str:
    """A node pool of the test's own: other nodes on a shared server never match."""
    return f"pool-{tag}"


@pytest.fixture
async def consumers(js, tag: str, project: str):
    """The scheduler's consumers, renamed for this test and narrowed to its project.

    Inventory subjects carry no project: the test's nodes live in a pool of their own instead.
    Node names start with `n-<tag>-` so that they can be cleaned up.
    """
    specs = SchedulerConsumers(
        inventory=replace(streams.SCHEDULER_INVENTORY, durable=f"test-sched-inventory-{tag}"),
        workloads=replace(streams.SCHEDULER_WORKLOADS, durable=f"test-sched-workloads-{tag}",
                          filter_subjects=(f"{subjects.PREFIX}.workload.submitted.{project}.>",)),
        podgroups=replace(streams.SCHEDULER_PODGROUPS, durable=f"test-sched-podgroups-{tag}",
                       filter_subjects=(f"{subjects.PREFIX}.podgroup.{project}.>",)),
    )
    await create_consumers(js, specs)
    yield specs
    await delete_consumers(js, specs)
    # Leave nothing of this test behind (the inventory keeps a node's last report for ever).
    info = await js.stream_info(streams.INVENTORY.name, subjects_filter=subjects.INVENTORY_ALL)
    for subject in info.state.subjects or {}:
        if subject.startswith(f"{subjects.PREFIX}.inventory.node.n-{tag}-"):
            await js.purge_stream(streams.INVENTORY.name, subject=subject)
    for stream, subject in (
        (streams.WORKLOADS.name, f"{subjects.PREFIX}.workload.submitted.{project}.>"),
        (streams.PODGROUPS.name, f"{subjects.PREFIX}.podgroup.{project}.>"),
        (streams.DECISIONS.name, f"{subjects.PREFIX}.scheduler.bind.{project}.>"),
    ):
        await js.purge_stream(stream, subject=subject)


async def create_consumers(js, specs: SchedulerConsumers) -> None:
    for spec in (specs.inventory, specs.workloads, specs.podgroups):
        await js.add_consumer(spec.stream, consumer_config(spec))


async def delete_consumers(js, specs: SchedulerConsumers) -> None:
    for spec in (specs.inventory, specs.workloads, specs.podgroups):
        try:
            await js.delete_consumer(spec.stream, spec.durable)
        except nats.js.errors.NotFoundError:
            pass


@pytest.fixture
def replay_consumers(js):
    """Delete and re-create consumers: every stored message is delivered again, same ids."""

    async def replay(specs: SchedulerConsumers) -> None:
        await delete_consumers(js, specs)
        await create_consumers(js, specs)

    return replay


@pytest.fixture
def stored_messages(js):
    """Every message a stream holds on a subject, read with a throwaway ordered consumer."""

    async def read(stream: str, subject: str) -> list:
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
        messages = []
        try:
            while True:
                messages.append(await sub.next_msg(timeout=0.5))
        except nats.errors.TimeoutError:
            pass
        finally:
            await sub.unsubscribe()
        return messages

    return read


@pytest.fixture
def eventually():
    """Await `check()` until it returns something truthy; fail after `timeout` seconds."""

    async def wait(check, timeout: float = 10.0, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
            await asyncio.sleep(interval)

    return wait
