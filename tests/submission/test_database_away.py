"""The database going away under the API (a restart, a failover): requests meanwhile are
answered 503 with Retry-After (try again), never 500, and the API serves again once it is back.
The API reaches PostgreSQL through a TCP relay the test can cut, as a restart cuts it."""

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.submission.conftest import start_harness

pytestmark = pytest.mark.infra


class Relay:
    """Forwards 127.0.0.1:<port> to the database; `cut()` drops every connection and refuses new
    ones until `restore()`."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.up = True
        self.pipes: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer):
        if not self.up:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.pipes |= {writer, up_writer}

        async def pump(src, dst):
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        self.up = False
        for pipe in self.pipes:
            pipe.transport.abort()
        self.pipes.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def test_the_database_away_is_503_then_the_api_recovers(database_url, tmp_path):
    parts = urlsplit(database_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await relay.start()
    netloc = parts.netloc.rsplit("@", 1)
    via_relay = urlunsplit(parts._replace(netloc=(
        f"{netloc[0]}@" if len(netloc) == 2 else "") + f"127.0.0.1:{port}"))
    harness = await start_harness(via_relay, tmp_path, FAIRWAY_SUBMISSION_REMEMBER_SECONDS=0)
    admin = harness.admin
    try:
        assert (await admin.get("/api/v1/org-unit/projects")).status_code == 200
        relay.cut()
        for path in ("/api/v1/org-unit/projects", "/api/v1/workloads"):
            r = await admin.get(path)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.headers["Retry-After"] == "2"
            assert "database" in r.json()["message"]
        relay.restore()
        for _ in range(50):  # the pool connects again
            if (await admin.get("/api/v1/org-unit/projects")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the API did not recover after the database came back")
    finally:
        await harness.service.runtime.stop()
        await relay.close()
