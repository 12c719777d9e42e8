"""EmbeddedNats and EmbeddedPostgres: start, use, restart on the same data, clear up leftovers."""

import asyncio
import os
import signal

import asyncpg
import httpx
import nats
import pytest

from fairway_devstack.servers import EmbeddedNats, EmbeddedPostgres, ServerError, free_port


def test_free_port_gives_distinct_unreserved_ports():
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    assert not {4222, 5432, 8080} & set(ports)


# ------------------------------------------------------------------------------------- NATS


async def test_nats_jetstream_keeps_messages_across_restart(tmp_path):
    data = tmp_path / "nats"
    with EmbeddedNats(data) as server:
        assert server.port not in (4222, None)
        assert server.url == f"nats://127.0.0.1:{server.port}"
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="DEVSTACK", subjects=["devstack.>"])
        for i in range(3):
            ack = await js.publish(f"devstack.{i}", f"message {i}".encode())
            assert ack.seq == i + 1
        sub = await js.pull_subscribe("devstack.>", durable="reader", stream="DEVSTACK")
        got = await sub.fetch(3, timeout=5)
        assert [m.data for m in got] == [b"message 0", b"message 1", b"message 2"]
        for m in got:
            await m.ack()
        await nc.close()

        async with httpx.AsyncClient(trust_env=False) as client:
            jsz = (await client.get(f"{server.monitor_url}/jsz")).json()
        assert jsz["config"]["max_memory"] == 512 * 1024**2
        assert str(data / "jetstream") in jsz["config"]["store_dir"]
        first_pid = server.pid
    assert not server.running
    assert (data / "nats-server.log").read_text().count("Server is ready") == 1

    with EmbeddedNats(data) as server:
        assert server.pid != first_pid
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        info = await js.stream_info("DEVSTACK")
        assert info.state.messages == 3
        assert (await js.get_msg("DEVSTACK", 2)).data == b"message 1"
        sub = await js.pull_subscribe("devstack.>", durable="rereader", stream="DEVSTACK")
        assert [m.data for m in await sub.fetch(3, timeout=5)] == [
            b"message 0",
            b"message 1",
            b"message 2",
        ]
        await nc.close()


async def test_nats_stops_a_server_left_running_on_its_data(tmp_path):
    data = tmp_path / "nats"
    orphan = EmbeddedNats(data).start()  # as if the process that started it had been killed
    nc = await nats.connect(orphan.url)
    await nc.jetstream().add_stream(name="LEFT", subjects=["left"])
    await nc.jetstream().publish("left", b"still here")
    await nc.close()
    orphan_pid = orphan.pid

    with EmbeddedNats(data) as server:
        assert not orphan.running, "the leftover server on the same store must be stopped"
        nc = await nats.connect(server.url)
        assert (await nc.jetstream().stream_info("LEFT")).state.messages == 1
        await nc.close()
    orphan.stop()  # reaps it; nothing else to do
    with pytest.raises(ProcessLookupError):
        os.kill(orphan_pid, 0)


def test_nats_fixed_port(tmp_path):
    port = free_port()
    with EmbeddedNats(tmp_path / "nats", port=port) as server:
        assert server.url == f"nats://127.0.0.1:{port}"


def test_nats_reports_a_server_that_cannot_start(tmp_path):
    with EmbeddedNats(tmp_path / "a") as first:
        busy = EmbeddedNats(tmp_path / "b", port=first.port, startup_timeout=10)
        with pytest.raises(ServerError, match="NATS did not start"):
            busy.start()


# ------------------------------------------------------------------------------- PostgreSQL


async def test_postgres_keeps_tables_across_restart(tmp_path):
    data = tmp_path / "pg"
    with EmbeddedPostgres(data, fast=True) as pg:
        assert pg.port not in (5432, None)
        assert pg.url == f"postgresql://postgres@127.0.0.1:{pg.port}/fairway"
        conn = await asyncpg.connect(pg.url)
        await conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO notes VALUES (1, 'kept')")
        assert await conn.fetchval("SHOW fsync") == "off"
        await conn.close()
        first_pid = pg.pid
    assert not (data / "postmaster.pid").exists()

    with EmbeddedPostgres(data) as pg:
        assert pg.pid != first_pid
        conn = await asyncpg.connect(pg.url)
        assert await conn.fetchval("SELECT body FROM notes WHERE id = 1") == "kept"
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        await conn.close()
        assert pg.psql("SELECT count(*) FROM notes", "fairway") == "1"
    log = (data / "log" / "postgres.log").read_text()
    assert log.count("database system is ready to accept connections") == 2


async def test_postgres_recovers_after_the_server_was_killed(tmp_path):
    data = tmp_path / "pg"
    first = EmbeddedPostgres(data).start()
    conn = await asyncpg.connect(first.url)
    await conn.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
    await conn.close()
    os.kill(first.pid, signal.SIGKILL)  # postmaster only: its backends linger for a moment
    for _ in range(200):
        if not first.running:
            break
        await asyncio.sleep(0.05)
    assert (data / "postmaster.pid").exists(), "a killed server leaves its pid file"

    with EmbeddedPostgres(data) as pg:
        conn = await asyncpg.connect(pg.url)
        assert await conn.fetchval("SELECT v FROM t") == 42
        await conn.close()
    first.stop()


def test_postgres_removes_a_pid_file_naming_another_program(tmp_path, bystander):
    data = tmp_path / "pg"
    with EmbeddedPostgres(data, fast=True):
        pass
    # A stale postmaster.pid whose pid now belongs to an unrelated process (pid reuse after
    # a reboot or in a container): PostgreSQL alone would refuse to start.
    (data / "postmaster.pid").write_text(
        f"{bystander.pid}\n{data}\n1700000000\n{free_port()}\n{data}\n127.0.0.1\n"
        "  1234 5678\nready   \n"
    )
    with EmbeddedPostgres(data, fast=True) as pg:
        assert pg.psql("SELECT 1") == "1"
    assert bystander.poll() is None, "the unrelated process must be left alone"


def test_postgres_removes_a_pid_file_of_a_dead_process(tmp_path, dead_pid):
    data = tmp_path / "pg"
    with EmbeddedPostgres(data, fast=True):
        pass
    (data / "postmaster.pid").write_text(f"{dead_pid}\n{data}\n")
    with EmbeddedPostgres(data, fast=True) as pg:
        assert pg.psql("SELECT 1") == "1"


async def test_postgres_stops_a_server_left_running_on_its_data(tmp_path):
    data = tmp_path / "pg"
    orphan = EmbeddedPostgres(data, fast=True).start()
    conn = await asyncpg.connect(orphan.url)
    await conn.execute("CREATE TABLE left_behind (v int)")
    await conn.close()

    with pytest.raises(ServerError, match="already running"):
        EmbeddedPostgres(data, replace_running=False).start()
    assert orphan.running

    with EmbeddedPostgres(data) as pg:
        assert not orphan.running
        conn = await asyncpg.connect(pg.url)
        assert await conn.fetchval("SELECT count(*) FROM left_behind") == 0
        await conn.close()
    orphan.stop()


def test_postgres_creates_databases(tmp_path):
    with EmbeddedPostgres(tmp_path / "pg", fast=True, database="app") as pg:
        assert pg.url.endswith("/app")
        url = pg.create_database("other")
        assert url == pg.url_for("other")
        with pytest.raises(ServerError, match="already exists"):
            pg.create_database("other")
        names = pg.psql("SELECT datname FROM pg_database ORDER BY datname").split()
        assert {"app", "other", "postgres"} <= set(names)


def test_postgres_refuses_a_foreign_directory(tmp_path):
    data = tmp_path / "pg"
    data.mkdir()
    (data / "precious.txt").write_text("not a database")
    with pytest.raises(ServerError, match="not a PostgreSQL data directory"):
        EmbeddedPostgres(data).start()
    assert (data / "precious.txt").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_postgres_as_root_needs_no_way_through_the_directories_above(tmp_path):
    import pwd
    import stat

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)  # like /root, or /tmp/pytest-of-root once pytest locks it again
    for _ in range(2):
        with EmbeddedPostgres(locked / "pg", fast=True) as pg:
            assert pg.psql("SELECT 1") == "1"
    assert (locked / "pg").stat().st_uid == pwd.getpwnam("fairway-pg").pw_uid
    assert stat.S_IMODE(locked.stat().st_mode) == 0o700, "we leave the parents' modes alone"
