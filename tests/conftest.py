"""Fixtures shared by every test: real NATS (JetStream) and PostgreSQL servers.

Embedded servers on free ports by default (so a fresh machine needs nothing installed);
FAIRWAY_TEST_NATS_URL / FAIRWAY_TEST_DATABASE_URL point the suite at servers you already run.
"""

import pytest

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
