"""Fixtures for the scheduler's tests: the real NATS and PostgreSQL, a throwaway database, and
durable consumers of the test's own that see only the test's project.

The servers come from the suite's `infra` fixture (tests/conftest.py): embedded ones, or those
FAIRWAY_TEST_NATS_URL / FAIRWAY_TEST_DATABASE_URL name.
"""

import asyncio
import time
from dataclasses import replace

import nats
import pytest
from nats.js.api import DeliverPolicy

from fairway_bus.bootstrap import consumer_config
from fairway_contracts import streams, subjects
from fairway_devstack.testing import fresh_database
from fairway_scheduler.testing import KEPT_STATE_DIFFERENCES, KEPT_STATE_DIFFERS, SchedulerConsumers


@pytest.fixture(autouse=True)
def kept_state_never_differs():
    """Services started with verify_kept_state check the ledger they keep every cycle."""
    before = KEPT_STATE_DIFFERENCES._value.get()
    yield
    assert KEPT_STATE_DIFFERENCES._value.get() == before, KEPT_STATE_DIFFERS


@pytest.fixture
def database_url(infra):
    """A database of its own for every test (the suite's default is one per module): the
    tests count rows."""
    with fresh_database(infra[1]) as url:
        yield url


@pytest.fixture
def pool(tag: str) -> str:
    """A node pool of the test's own: other nodes on a shared server never match."""
    return f"pool-{tag}"


@pytest.fixture
async def consumers(js, tag: str, project: str):
    """The scheduler's consumers, renamed for this test and narrowed to its project.

    Inventory subjects carry no project: the test's nodes live in a pool of their own instead.
    Node names start with `n-<tag>-` so that they can be cleaned up. Org subjects carry ids
    that a filter cannot narrow by prefix: the org consumers see only what is published after
    they were created (and node pools only the test's own pool).
    """
    specs = SchedulerConsumers(
        inventory=replace(streams.SCHEDULER_INVENTORY, durable=f"test-sched-inventory-{tag}"),
        workloads=replace(streams.SCHEDULER_WORKLOADS, durable=f"test-sched-workloads-{tag}",
                          filter_subjects=(f"{subjects.PREFIX}.workload.submitted.{project}.>",)),
        podgroups=replace(streams.SCHEDULER_PODGROUPS, durable=f"test-sched-podgroups-{tag}",
                          filter_subjects=(f"{subjects.PREFIX}.podgroup.{project}.>",)),
        **org_consumers(tag),
    )
    await create_consumers(js, specs)
    yield specs
    await delete_consumers(js, specs)
    await clean_up(js, tag, project)


def org_consumers(tag: str) -> dict:
    return {
        "projects": replace(streams.SCHEDULER_PROJECTS, durable=f"test-sched-projects-{tag}"),
        "departments": replace(streams.SCHEDULER_DEPARTMENTS,
                               durable=f"test-sched-departments-{tag}"),
        "node_pools": replace(streams.SCHEDULER_NODEPOOLS, durable=f"test-sched-nodepools-{tag}",
                              filter_subjects=(subjects.org_node_pool(f"pool-{tag}"),)),
    }


async def clean_up(js, tag: str, *projects: str) -> None:
    """Leave nothing of this test behind (the inventory and the org keep the last report of
    everything for ever)."""
    for stream, everything in ((streams.INVENTORY.name, subjects.INVENTORY_ALL),
                               (streams.ORG.name, subjects.ORG_ALL),
                               (streams.DECISIONS.name, subjects.DECISION_ALL)):
        info = await js.stream_info(stream, subjects_filter=everything)
        for subject in info.state.subjects or {}:
            if tag in subject:
                await js.purge_stream(stream, subject=subject)
    for project in projects:
        for stream, subject in (
            (streams.WORKLOADS.name, f"{subjects.PREFIX}.workload.submitted.{project}.>"),
            (streams.PODGROUPS.name, f"{subjects.PREFIX}.podgroup.{project}.>"),
        ):
            await js.purge_stream(stream, subject=subject)


NEW_ONLY = ("projects", "departments", "node_pools")


async def create_consumers(js, specs: SchedulerConsumers, new_only=NEW_ONLY) -> None:
    """`new_only`: the consumers (field names) that start at the end of their stream."""
    for name in ("inventory", "workloads", "podgroups", "projects", "departments",
                 "node_pools"):
        spec = getattr(specs, name)
        config = consumer_config(spec)
        if name in new_only:
            config.deliver_policy = DeliverPolicy.NEW
        await js.add_consumer(spec.stream, config)


async def delete_consumers(js, specs: SchedulerConsumers) -> None:
    for spec in specs.all():
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
