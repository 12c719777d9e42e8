"""The service skeleton against real servers: /readyz follows the broker and the database
(503 while either is unreachable, 200 again once it is back), and a stop finishes the message
in hand (acked, never redelivered) before the service goes."""

import asyncio
import contextlib
import time
from dataclasses import replace

import httpx
import pytest

from fairway_bus import Delivery, durable_subscriber, publish_model
from fairway_bus.bootstrap import consumer_config
from fairway_contracts import streams, subjects
from fairway_contracts.events import Heartbeat
from fairway_contracts.workloads import utcnow
from fairway_devstack.servers import EmbeddedNats, free_port
from fairway_runtime import Service, ServiceSettings

pytestmark = pytest.mark.infra


async def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.1)


async def readyz(service: Service) -> int:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(f"http://127.0.0.1:{service.http_port}/readyz")
    return response.status_code


async def status_becomes(service: Service, code: int, timeout: float = 30.0) -> None:
    async def check() -> bool:
        return await readyz(service) == code

    await wait_for(check, timeout, f"/readyz {code}")


class TcpProxy:
    """A TCP relay to PostgreSQL that the test can cut (every connection closed, the port no
    longer listening) and restore on the same port: the database becomes unreachable for the
    service exactly as it would across a network failure."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port,
                                                  reuse_address=True)

    async def cut(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def probe_settings(nats_url: str, database_url: str) -> ServiceSettings:
    return ServiceSettings(nats_url=nats_url, database_url=database_url,
                           readiness_probe_seconds=0.3, heartbeat_seconds=0.3)


async def test_readiness_follows_the_broker(tmp_path, database_url):
    nats_port, monitor_port = free_port(), free_port()
    server = EmbeddedNats(tmp_path / "nats", nats_port, monitor_port=monitor_port).start()
    service = Service("readiness_broker", probe_settings(server.url, database_url),
                      migrations=None)
    try:
        await service.start()
        await status_becomes(service, 200)
        server.stop()
        await status_becomes(service, 503)
        assert not service.is_ready()
        server = EmbeddedNats(tmp_path / "nats", nats_port, monitor_port=monitor_port).start()
        await status_becomes(service, 200)  # the client reconnects on its own
    finally:
        await service.stop()
        server.stop()


async def test_readiness_follows_the_database(nats_url, database_url):
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname, parts.port)
    await proxy.start()
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"
    service = Service("readiness_database",
                      probe_settings(nats_url, urlunsplit(parts._replace(netloc=netloc))),
                      migrations=None)
    try:
        await service.start()
        await status_becomes(service, 200)
        await proxy.cut()
        await status_becomes(service, 503)
        await proxy.start()
        await status_becomes(service, 200)  # the pool connects again by itself
        async with httpx.AsyncClient(trust_env=False) as client:
            metrics = await client.get(f"http://127.0.0.1:{service.http_port}/metrics")
        assert 'fairway_service_ready{service="readiness_database"} 1.0' in metrics.text
    finally:
        await service.stop()
        with contextlib.suppress(Exception):
            await proxy.cut()


async def test_a_stop_finishes_the_message_in_hand(js, nats_url, database_url, tag, project):
    spec = replace(streams.METRICS_PHASES, service="runtime-test",
                   durable=f"test-runtime-{tag}",
                   filter_subjects=(f"{subjects.PREFIX}.phase.{project}.>",))
    await js.add_consumer(spec.stream, consumer_config(spec))
    service = Service("graceful", probe_settings(nats_url, database_url), migrations=None)
    started, finished = asyncio.Event(), []

    @durable_subscriber(service.broker, spec, Heartbeat)
    async def slow(event: Heartbeat, delivery: Delivery) -> None:
        started.set()
        await asyncio.sleep(1.5)  # still working when the stop comes
        finished.append(delivery.msg_id)

    try:
        await service.start()
        await publish_model(js, subjects.phase(project, "w1", "Running"),
                            Heartbeat(service="x", instance="i", ready=True, time=utcnow()),
                            msg_id=f"graceful-{tag}")
        await asyncio.wait_for(started.wait(), timeout=30)
        await service.stop()
        assert finished == [f"graceful-{tag}"], "the stop waited for the handler"
        info = await js.consumer_info(spec.stream, spec.durable)
        assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0), (
            "the message was acked before the service went")
    finally:
        if service.ready:
            await service.stop()
        await js.delete_consumer(spec.stream, spec.durable)
        await js.purge_stream(spec.stream, subject=f"{subjects.PREFIX}.phase.{project}.>")
