"""The submission API in-process against a real PostgreSQL: the app as built for production,
its bootstrap run, in-process stand-ins for the other services (policy's pure evaluator, the
metrics service's answers, no nodes), and clients per caller (the bootstrap admin, then
whoever a test creates). `real_policy` puts a real policy service over NATS in the stand-in's
place."""

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest
import uvicorn

from fairway_bus import NoReply
from fairway_contracts import subjects
from fairway_contracts.events import NodeInventory, PolicyEvaluateRequest
from fairway_policy.app import build as build_policy
from fairway_policy.core.evaluation import evaluate
from fairway_policy.settings import PolicySettings
from fairway_submission.service import SubmissionService
from fairway_submission.settings import SubmissionSettings
from fairway_submission.testing import (
    Peers,
    build_for_tests,
    over_connection,
    start_without_broker,
)


class Harness:
    def __init__(self, service: SubmissionService, state_dir: Path):
        self.service = service
        self.app = service.runtime.http_app
        self.state_dir = state_dir
        self.admin_token = (state_dir / "admin-token").read_text().strip()
        self.clients: list[httpx.AsyncClient] = []

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                              base_url="http://api", headers=headers)
        self.clients.append(c)
        return c

    @property
    def admin(self) -> httpx.AsyncClient:
        return self.client(self.admin_token)

    async def user(self, username: str, role: str | None = None, scope_type: str = "cluster",
                   scope_id: str | None = None) -> httpx.AsyncClient:
        """A user with one access rule (or none), logged in."""
        admin = self.admin
        r = await admin.post("/api/v1/users", json={"username": username,
                                                    "password": "s3cret-pass"})
        assert r.status_code == 201, r.text
        if role:
            r = await admin.post("/api/v1/authorization/access-rules", json={
                "subjectType": "user", "subjectId": username, "roleName": role,
                "scopeType": scope_type, "scopeId": scope_id})
            assert r.status_code == 201, r.text
        r = await self.client().post("/api/v1/token", json={
            "grantType": "password", "username": username, "password": "s3cret-pass"})
        assert r.status_code == 200, r.text
        return self.client(r.json()["accessToken"])

    async def outbox(self, prefix: str) -> list[tuple[str, dict]]:
        async with self.service.pool.acquire() as conn:
            rows = await conn.fetch("SELECT subject, payload FROM outbox WHERE subject LIKE $1"
                                    " ORDER BY id", prefix + "%")
        import json

        return [(r["subject"], json.loads(bytes(r["payload"]))) for r in rows]


@contextlib.asynccontextmanager
async def served(app) -> AsyncIterator[str]:
    """An ASGI app over real HTTP on a free port of this machine, on the test's own event
    loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                           lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def start_harness(database_url: str, tmp_path: Path, **settings) -> Harness:
    env = SubmissionSettings(DATABASE_URL=database_url,
                             FAIRWAY_STATE_DIR=str(tmp_path), **settings)
    runtime, service = build_for_tests(env, Peers(
        policy=policy_answers(), metrics=metrics_answers(), read_inventory=no_nodes))
    await start_without_broker(runtime, service)
    return Harness(service, tmp_path)


def policy_answers():
    """Policy's pure evaluator standing in for the evaluation over NATS; nobody answers the
    policy CRUD requests (a test that needs them uses `real_policy`)."""

    async def ask(subject: str, data: bytes) -> bytes:
        if subject != subjects.POLICY_EVALUATE:
            raise NoReply(subject, "no responders")
        return evaluate(PolicyEvaluateRequest.model_validate_json(data)).to_json()

    return ask


async def no_nodes() -> list[NodeInventory]:
    return []


@contextlib.asynccontextmanager
async def real_policy(harness: Harness, nats_url: str, database_url: str) -> AsyncIterator[None]:
    """A policy service of the harness's own over a real NATS server (its subjects under a test
    prefix): every policy request of the API, evaluation and CRUD, goes to it meanwhile."""
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    policy = build_policy(PolicySettings(NATS_URL=nats_url, DATABASE_URL=database_url),
                          evaluate_subject=prefix + subjects.POLICY_EVALUATE,
                          crud_prefix=prefix)
    await policy.start(serve_http=False)
    nc = await nats.connect(nats_url)
    peers = harness.service.peers
    stand_in, peers.policy = peers.policy, over_connection(nc, prefix)
    try:
        yield
    finally:
        peers.policy = stand_in
        await nc.close()
        await policy.stop()


def metrics_answers():
    """The metrics service's own answers over an empty projection, standing in for the request
    over NATS (the telemetry routes' validation and scoping are what these tests exercise)."""
    from fairway_contracts import subjects
    from fairway_contracts.telemetry import MetricsQuery, MetricsReply
    from fairway_metrics.core.queries import downsample
    from fairway_metrics.service import MetricsService
    from fairway_metrics.settings import MetricsSettings

    metrics = MetricsService(None, MetricsSettings())

    async def ask(subject: str, data: bytes) -> bytes:
        if subject == subjects.METRICS_QUERY_TELEMETRY:
            return metrics.answer_telemetry(data).to_json()
        query = MetricsQuery.model_validate_json(data)
        return MetricsReply(measurements=downsample(query, [], {})).to_json()

    return ask


@pytest.fixture(scope="module")
async def harness(database_url, tmp_path_factory) -> AsyncIterator[Harness]:
    h = await start_harness(database_url, tmp_path_factory.mktemp("state"))
    yield h
    for c in h.clients:
        await c.aclose()
    await h.service.pool.close()


@pytest.fixture(scope="module")
async def default_project(harness) -> dict:
    r = await harness.admin.get("/api/v1/org-unit/projects")
    return next(p for p in r.json()["projects"] if p["name"] == "default")


__all__ = ["Harness", "asyncpg", "real_policy", "start_harness"]
