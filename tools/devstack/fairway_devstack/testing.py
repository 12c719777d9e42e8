"""Helpers for tests that need real NATS / PostgreSQL servers or the whole stack.

In a conftest.py:

    @pytest.fixture(scope="session")
    def infra(tmp_path_factory):
        with infra_endpoints(tmp_path_factory.mktemp("infra")) as endpoints:
            yield endpoints                      # (nats_url, database_url)

    @pytest.fixture(scope="module")
    def database_url(infra):
        with fresh_database(infra[1]) as url:    # a database of its own for each test module
            yield url

Set FAIRWAY_TEST_NATS_URL / FAIRWAY_TEST_DATABASE_URL to run against servers you already have
instead of starting embedded ones.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fairway_devstack.servers import EmbeddedNats, EmbeddedPostgres, psql, quote_ident
from fairway_devstack.stack import Stack, StackConfig, SupervisionEvent

__all__ = [
    "Supervisor", "database_url_with", "fresh_database", "infra_endpoints", "running_stack",
    "supervising",
]


@contextmanager
def infra_endpoints(tmp_dir: Path) -> Iterator[tuple[str, str]]:
    """Yield `(nats_url, database_url)`: FAIRWAY_TEST_NATS_URL / FAIRWAY_TEST_DATABASE_URL when
    set, else embedded servers on free ports with their data under `tmp_dir` (PostgreSQL with
    fsync off), stopped on exit."""
    with ExitStack() as servers:
        nats_url = os.environ.get("FAIRWAY_TEST_NATS_URL")
        if not nats_url:
            nats_url = servers.enter_context(EmbeddedNats(Path(tmp_dir) / "nats")).url
        database_url = os.environ.get("FAIRWAY_TEST_DATABASE_URL")
        if not database_url:
            pg = EmbeddedPostgres(Path(tmp_dir) / "postgres", fast=True)
            database_url = servers.enter_context(pg).url
        yield nats_url, database_url


def database_url_with(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def _libpq_url(url: str) -> str:
    """psql understands postgresql:// but not SQLAlchemy-style `postgresql+asyncpg://`."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


@contextmanager
def fresh_database(database_url: str, prefix: str = "fairway_test") -> Iterator[str]:
    """Create an empty database with a random name `<prefix>_<hex>` on the server of
    `database_url`, yield its URL, and drop it afterwards (closing any connections left)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    server = _libpq_url(database_url)
    psql(server, f"CREATE DATABASE {quote_ident(name)}")
    try:
        yield database_url_with(database_url, name)
    finally:
        psql(server, f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


@contextmanager
def running_stack(state_dir: Path, **overrides: Any) -> Iterator[Stack]:
    """A started `Stack` for tests: state under `state_dir`, API on a free port, PostgreSQL
    without fsync; NATS_URL / DATABASE_URL / KUBECONFIG from the environment are ignored
    unless passed here (`nats_url=`, `database_url=`, `kubeconfig=`)."""
    config = replace(
        StackConfig(state_dir=Path(state_dir), api_port=0, fast_storage=True), **overrides
    )
    with Stack(config) as stack:
        yield stack


class Supervisor:
    """`Stack.supervise()` called in a thread, as `fairway up` calls it: what it saw and did, and
    whether it is still running (it must be, whatever crashes)."""

    def __init__(self, stack: Stack, interval: float) -> None:
        self.stack = stack
        self.interval = interval
        self.events: list[SupervisionEvent] = []
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self.events += self.stack.supervise()
        except BaseException as exc:  # a test asserts on it: the supervisor must not die
            self.failure = exc


@contextmanager
def supervising(stack: Stack, interval: float = 0.2) -> Iterator[Supervisor]:
    """Supervise `stack` in a background thread until the block ends."""
    supervisor = Supervisor(stack, interval)
    supervisor._thread.start()
    try:
        yield supervisor
    finally:
        supervisor._stop.set()
        supervisor._thread.join(timeout=120)
