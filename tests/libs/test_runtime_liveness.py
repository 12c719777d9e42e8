"""Liveness: a service cut off from NATS for good says so on /healthz and /livez (503), so an
orchestrator restarts it; a connection the server closed for good (nats-py never reopens one) is
replaced by building the service again, with its subscriptions, on a new connection."""

import asyncio
import threading
import time
import uuid

import httpx
import pytest

from fairway_bus import connection, request
from fairway_devstack.servers import EmbeddedNats, free_port
from fairway_runtime import Service, ServiceSettings
from fairway_runtime.service import run_until_stopped

pytestmark = pytest.mark.infra


def settings(nats_url: str, database_url: str, grace: float = 60.0) -> ServiceSettings:
    return ServiceSettings(nats_url=nats_url, database_url=database_url,
                           readiness_probe_seconds=0.3, heartbeat_seconds=0.3,
                           broker_liveness_grace_seconds=grace)


async def status(service: Service, path: str) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{service.http_port}{path}")).status_code


async def becomes(service: Service, path: str, code: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while (seen := await status(service, path)) != code:
        assert time.monotonic() < deadline, f"{path} stayed {seen}, expected {code}"
        await asyncio.sleep(0.1)


async def kill_the_connection(service: Service) -> None:
    """What an oversized message used to cause: the server answers a protocol violation
    with -ERR and closes the connection, and nats-py closes its side for good."""
    nc = connection(service.broker)
    nc._transport.write(b"PUB fairway.test.violation 99999999\r\n")
    await nc._transport.drain()


async def test_a_short_outage_fails_readiness_a_long_one_liveness(tmp_path, database_url):
    nats_port, monitor_port = free_port(), free_port()
    server = EmbeddedNats(tmp_path / "nats", nats_port, monitor_port=monitor_port).start()
    service = Service("liveness_outage", settings(server.url, database_url, grace=1.5),
                      migrations=None)
    try:
        await service.start()
        await becomes(service, "/healthz", 200)
        server.stop()
        await becomes(service, "/readyz", 503)
        assert await status(service, "/livez") == 200  # a blip is not worth a restart
        await becomes(service, "/livez", 503, within=5)
        assert await status(service, "/healthz") == 503
        server = EmbeddedNats(tmp_path / "nats", nats_port, monitor_port=monitor_port).start()
        await becomes(service, "/livez", 200)  # reconnected: alive again
    finally:
        await service.stop()
        server.stop()


async def test_a_connection_closed_for_good_makes_the_service_not_alive(nats_url, database_url):
    service = Service("liveness_closed", settings(nats_url, database_url), migrations=None)
    try:
        await service.start()
        await kill_the_connection(service)
        await becomes(service, "/livez", 503, within=5)
        assert service.reopen
    finally:
        await service.stop()


def test_a_service_whose_connection_was_closed_is_built_again_and_answers(nats_url,
                                                                         database_url):
    subject = f"test.liveness.{uuid.uuid4().hex[:8]}"
    built: list[Service] = []

    def build() -> Service:
        service = Service("liveness_rebuild", settings(nats_url, database_url), migrations=None)

        @service.broker.subscriber(subject)
        async def echo(body: bytes) -> bytes:
            return b"re:" + body

        built.append(service)
        return service

    runner = threading.Thread(target=run_until_stopped, args=(build,), daemon=True)
    runner.start()

    async def scenario() -> None:
        import nats
        nc = await nats.connect(nats_url)
        try:
            assert await answered(nc) == b"re:a"
            current = built[-1]
            fut = asyncio.run_coroutine_threadsafe(kill_the_connection(current), current._loop)
            fut.result(timeout=5)
            deadline = time.monotonic() + 20
            while len(built) < 2 or not built[-1].ready:
                assert time.monotonic() < deadline, "the service was not built again"
                await asyncio.sleep(0.1)
            assert await answered(nc) == b"re:a"
        finally:
            await nc.close()

    async def answered(nc) -> bytes:
        deadline = time.monotonic() + 10
        while True:
            try:
                return await request(nc, subject, b"a", timeout=1)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    try:
        asyncio.run(scenario())
    finally:
        built[-1].request_stop()
        runner.join(timeout=20)
    assert not runner.is_alive()
