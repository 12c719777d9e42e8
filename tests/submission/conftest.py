"""The submission API in-process against a real PostgreSQL: the app as built for production,
its bootstrap run, policy's pure evaluator standing in for the request over NATS, and clients
per caller (the bootstrap admin, then whoever a test creates)."""

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from fairway_policy.core.evaluation import evaluate
from fairway_store import create_pool, migrate_dsn
from fairway_submission.app import build
from fairway_submission.settings import SubmissionSettings


class Harness:
    def __init__(self, service, app, state_dir: Path):
        self.service = service
        self.app = app
        self.ctx = app.state.ctx
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


async def start_harness(database_url: str, tmp_path: Path, **settings) -> Harness:
    env = SubmissionSettings(DATABASE_URL=database_url,
                             FAIRWAY_STATE_DIR=str(tmp_path), **settings)
    service = build(env)
    await migrate_dsn(database_url, service.schema, service.migrations)
    service.pool = await create_pool(database_url, service.schema)
    for hook in service._on_start:
        await hook(service)
    app = service.http_app

    async def policy(request):
        return evaluate(request)

    app.state.ctx.evaluate = policy
    app.state.ctx.ask_metrics = metrics_answers()
    return Harness(service, app, tmp_path)


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


__all__ = ["Harness", "asyncpg", "start_harness"]
