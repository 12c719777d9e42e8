"""Fixtures shared by every test: real NATS (JetStream) and PostgreSQL servers.

Embedded servers on free ports by default (so a fresh machine needs nothing installed);
FAIRWAY_TEST_NATS_URL / FAIRWAY_TEST_DATABASE_URL point the suite at servers you already run.
"""

import uuid

import nats
import pytest

from fairway_bus.bootstrap import ensure_streams_and_consumers
from fairway_devstack.testing import fresh_database, infra_endpoints


@pytest.fixture(scope="session")
def infra(tmp_path_factory):
    with infra_endpoints(tmp_path_factory.mktemp("infra")) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def nats_url(infra) -> str:
    return infra[0]


@pytest.fixture(scope="module")
def database_url(infra):
    with fresh_database(infra[1]) as url:
        yield url


@pytest.fixture
async def js(nats_url: str):
    """A JetStream context with every stream and consumer bootstrapped."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams_and_consumers(js)
    yield js
    await nc.close()


@pytest.fixture
def tag() -> str:
    """A short random tag that keeps a test's subjects and consumers its own."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def project(tag: str) -> str:
    return f"p-{tag}"
