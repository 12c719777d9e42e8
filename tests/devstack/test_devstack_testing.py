"""fairway_devstack.testing: endpoints for infra tests and a database per test module."""

import asyncpg
import nats
import pytest

from fairway_devstack.servers import psql
from fairway_devstack.testing import database_url_with, fresh_database, infra_endpoints


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("FAIRWAY_TEST_NATS_URL", raising=False)
        mp.delenv("FAIRWAY_TEST_DATABASE_URL", raising=False)
        with infra_endpoints(tmp_path_factory.mktemp("infra")) as urls:
            yield urls


async def test_infra_endpoints_start_embedded_servers(endpoints):
    nats_url, database_url = endpoints
    assert nats_url.startswith("nats://127.0.0.1:")
    assert database_url.startswith("postgresql://postgres@127.0.0.1:")
    assert database_url.endswith("/fairway")
    nc = await nats.connect(nats_url)
    assert (await nc.jetstream().account_info()).limits is not None
    await nc.close()
    conn = await asyncpg.connect(database_url)
    assert await conn.fetchval("SHOW fsync") == "off"
    await conn.close()


async def test_fresh_database_is_empty_and_dropped_afterwards(endpoints):
    _, database_url = endpoints
    with fresh_database(database_url) as one, fresh_database(database_url) as two:
        assert one != two
        name = one.rsplit("/", 1)[1]
        assert name.startswith("fairway_test_")
        conn = await asyncpg.connect(one)
        await conn.execute("CREATE TABLE mine (v int)")
        await conn.close()
        conn = await asyncpg.connect(two)  # left open: the drop must still succeed
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename='mine'") == 0
    conn.terminate()
    left = psql(database_url, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'")
    assert left == "0"


def test_infra_endpoints_prefer_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRWAY_TEST_NATS_URL", "nats://nats.example:4222")
    monkeypatch.setenv("FAIRWAY_TEST_DATABASE_URL", "postgresql://u@db.example/x")
    with infra_endpoints(tmp_path) as urls:
        assert urls == ("nats://nats.example:4222", "postgresql://u@db.example/x")
    assert not any(tmp_path.iterdir()), "nothing is started"


def test_database_url_with_keeps_credentials_and_options():
    url = "postgresql://u:p@host:5433/fairway?sslmode=disable"
    assert database_url_with(url, "t1") == "postgresql://u:p@host:5433/t1?sslmode=disable"
