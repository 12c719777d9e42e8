"""The CLI against the real API: the submission app served by uvicorn on a free port from a
thread with its own event loop (its database pool lives there), policy's pure evaluator in
place of NATS, and a private config file per test."""

import asyncio
import socket
import threading
import time

import pytest
import uvicorn
from typer.testing import CliRunner

from fairway_cli.main import app
from tests.submission.conftest import start_harness


class Server:
    def __init__(self, database_url: str, state_dir):
        self.loop = asyncio.new_event_loop()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.harness = None
        self.server: uvicorn.Server | None = None
        self.thread = threading.Thread(target=self._run, args=(database_url, state_dir),
                                       daemon=True)

    def _run(self, database_url, state_dir) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve(database_url, state_dir))

    async def _serve(self, database_url, state_dir) -> None:
        self.harness = await start_harness(database_url, state_dir)
        config = uvicorn.Config(self.harness.app, host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        await self.server.serve()
        await self.harness.service.pool.close()

    def start(self) -> "Server":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not (self.server and self.server.started):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        return self

    def run(self, coro):
        """Run a coroutine on the server's loop (e.g. to feed a phase event)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        if self.server:
            self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    s = Server(database_url, tmp_path_factory.mktemp("state")).start()
    yield s
    s.stop()


@pytest.fixture
def cli(server, tmp_path, monkeypatch):
    """Run `fairway …`; asserts the exit code (0 unless told)."""
    monkeypatch.setenv("FAIRWAY_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("FAIRWAY_STATE_DIR", str(tmp_path / "no-stack"))
    monkeypatch.delenv("FAIRWAY_TOKEN", raising=False)
    monkeypatch.delenv("FAIRWAY_API_URL", raising=False)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env={"COLUMNS": "220"})
        assert result.exit_code == code, (result.exit_code, result.output)
        return result.output

    return run


def admin_password(server) -> str:
    import json

    return json.loads((server.harness.state_dir / "admin.json").read_text())["password"]
