"""Active/standby schedulers: two real `python -m fairway_scheduler` processes share one NATS,
one database and a Lease in kubesim. Only the holder decides; killing it (SIGKILL, no release)
hands over within 15 s; a leader whose Lease is taken stops deciding at once; no decision is
ever made twice.

The processes run on a NATS server of this module's own: they read the scheduler's real
durable consumers, which on the suite's shared server would also see other tests' workloads.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from fairway_bus import publish_model
from fairway_bus.bootstrap import ensure_streams_and_consumers
from fairway_contracts import streams, subjects
from fairway_contracts.events import BindDecision
from fairway_contracts.workloads import Phase, PodSummary
from fairway_devstack.servers import EmbeddedNats
from fairway_kubesim import KubeSimThread
from fairway_scheduler.leader import Attempt, LeaderElector, LeaseLock, LeaseTimings
from tests.scheduler.test_scheduler_service import inventory, phase_changed, submitted

pytestmark = pytest.mark.infra

TAKEOVER_LIMIT = 15.0  # the bound, with the default lease timings


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory) -> Iterator[str]:
    with EmbeddedNats(tmp_path_factory.mktemp("leader-nats")) as server:
        yield server.url


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory) -> Iterator[Path]:
    with KubeSimThread() as sim:
        yield sim.write_kubeconfig(tmp_path_factory.mktemp("leader-kube") / "kubeconfig")


@pytest.fixture
async def bus(own_nats: str):
    nc = await nats.connect(own_nats)
    js = nc.jetstream()
    await ensure_streams_and_consumers(js)
    yield js
    await nc.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SchedulerProcess:
    """One scheduler instance as operators run it, with its /metrics to look into."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path):
        self.name = name
        self.port = _free_port()
        self.log_path = log_dir / f"scheduler-{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fairway_scheduler"],
            env={**env, "FAIRWAY_HTTP_PORT": str(self.port)},
            stdout=self._log, stderr=subprocess.STDOUT)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A sample of this instance's /metrics, None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                        timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and (labels is None or sample.labels == labels):
                    return sample.value
        return 0.0 if labels else None

    def leading(self) -> bool:
        return self.metric("fairway_scheduler_leader") == 1

    def decisions(self) -> float:
        return self.metric("fairway_scheduler_decisions_total", {"kind": "bind"}) or 0.0

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def close(self) -> None:
        self.kill(signal.SIGTERM)
        self._log.close()


@pytest.fixture
def schedulers(own_nats, database_url, kubeconfig, tmp_path, tag):
    """Start scheduler instances that stand for the same Lease (one of this test's own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FAIRWAY_"))}
    env |= {"NATS_URL": own_nats, "DATABASE_URL": database_url,
            "KUBECONFIG": str(kubeconfig), "FAIRWAY_SCHEDULER_LEADER_ELECTION": "on",
            "FAIRWAY_SCHEDULER_LEASE_NAME": f"scheduler-{tag}",
            "FAIRWAY_SCHEDULER_CYCLE_SECONDS": "0.2", "PYTHONUNBUFFERED": "1"}
    started: list[SchedulerProcess] = []

    def start(name: str, **settings: str) -> SchedulerProcess:
        process = SchedulerProcess(name, env | settings, tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


async def until(check, what: str, timeout: float, processes=(), interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        for process in processes:
            if process.proc.poll() is not None:
                raise AssertionError(f"scheduler {process.name} exited:\n{process.output()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name} ---\n{p.output()}" for p in processes)
            raise AssertionError(f"{what}: not within {timeout:.0f}s\n{logs}")
        await asyncio.sleep(interval)


async def bind_decisions(js, project: str) -> list[BindDecision]:
    """Every bind decision the DECISIONS stream holds for the project."""
    every_workload = subjects.bind(project, "w").rsplit(".", 1)[0] + ".*"
    sub = await js.subscribe(every_workload, stream=streams.DECISIONS.name,
                             ordered_consumer=True)
    decisions = []
    try:
        while True:
            message = await sub.next_msg(timeout=0.5)
            decisions.append(BindDecision.model_validate_json(message.data))
    except nats.errors.TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return decisions


async def submit(js, project: str, pool: str, count: int) -> list[str]:
    """`count` one-GPU workloads, each with its pod waiting for a node."""
    ids = []
    for _ in range(count):
        wid = str(uuid.uuid4())
        await publish_model(js, subjects.workload_submitted(project, wid),
                            submitted(wid, project, pool, gpus=1), msg_id=f"sub-{wid}")
        await publish_model(js, subjects.podgroup(project, wid),
                            phase_changed(wid, project, 1, Phase.PENDING,
                                          [PodSummary(name=f"{wid[:8]}-0", gpus=1)]),
                            msg_id=f"ph-{wid}-1")
        ids.append(wid)
    return ids


async def nodes(js, tag: str, pool: str, count: int, gpus: int = 8) -> None:
    for i in range(count):
        name = f"n-{tag}-{i}"
        await publish_model(js, subjects.node_inventory(name), inventory(name, pool, gpus),
                            msg_id=f"inv-{name}")


def assert_decided_once(decisions: list[BindDecision], workloads: list[str]) -> None:
    per_workload = Counter(d.workload_id for d in decisions)
    assert per_workload == Counter(workloads), "each workload bound exactly once"
    ids = [d.decision_id for d in decisions]
    assert len(ids) == len(set(ids)), "no decision id repeated on the stream"


async def test_standby_takes_over_within_15s_and_nothing_is_decided_twice(
        bus, schedulers, project, pool, tag):
    first = schedulers("first")
    await until(first.leading, "the first scheduler leads", 60, [first])
    second = schedulers("second")
    await until(lambda: second.metric("fairway_scheduler_leader") == 0,
                "the second scheduler is up, standing by", 60, [first, second])

    await nodes(bus, tag, pool, count=2)
    before = await submit(bus, project, pool, 4)
    decided = await until(lambda: _at_least(len(before), bind_decisions(bus, project)),
                          "the leader binds the first workloads", 30, [first, second])
    assert_decided_once(decided, before)
    # Only the leader decided: the standby committed no decision.
    assert (first.decisions(), second.decisions()) == (len(before), 0)
    assert not second.leading()

    # Work in flight when the leader dies without a word: some may be decided by the first,
    # the rest by the second, none by both.
    during = await submit(bus, project, pool, 4)
    first.kill(signal.SIGKILL)
    killed = time.monotonic()
    await until(second.leading, "the standby takes over", TAKEOVER_LIMIT + 5, [second],
                interval=0.05)
    took = time.monotonic() - killed
    assert took <= TAKEOVER_LIMIT, f"took over after {took:.1f}s"

    after = await submit(bus, project, pool, 4)
    workloads = before + during + after
    # Messages the dead leader had fetched but not acknowledged come back after the
    # consumers' ack wait (30 s): give them that long.
    await until(lambda: _at_least(len(workloads), bind_decisions(bus, project)),
                "the new leader binds the rest", 75, [second])
    await asyncio.sleep(1.0)  # a duplicate, if any, would follow the last one closely
    assert_decided_once(await bind_decisions(bus, project), workloads)
    assert second.decisions() >= len(after)


async def test_a_leader_whose_lease_is_taken_stops_deciding(
        bus, schedulers, kubeconfig, project, pool, tag):
    # Short timings: the test waits for an expiry.
    leader = schedulers("only", FAIRWAY_SCHEDULER_LEASE_SECONDS="4",
                        FAIRWAY_SCHEDULER_LEASE_RENEW_SECONDS="0.5",
                        FAIRWAY_SCHEDULER_LEASE_RENEW_DEADLINE_SECONDS="3",
                        FAIRWAY_SCHEDULER_LEASE_RETRY_SECONDS="0.5")
    await until(leader.leading, "the scheduler leads", 60, [leader])
    await nodes(bus, tag, pool, count=1)
    first = await submit(bus, project, pool, 1)
    await until(lambda: _at_least(1, bind_decisions(bus, project)), "a first bind", 30, [leader])

    # Someone else (another scheduler, in a partition the leader cannot see) holds the Lease.
    coordination = client.CoordinationV1Api(
        config.new_client_from_config(config_file=str(kubeconfig)))
    lease = coordination.read_namespaced_lease(f"scheduler-{tag}", "default")
    lease.spec.holder_identity = "intruder"
    lease.spec.renew_time = datetime.now(UTC)
    coordination.replace_namespaced_lease(f"scheduler-{tag}", "default", lease)
    # (renewals come every 0.5 s; the bound allows for a loaded machine)
    await until(lambda: not leader.leading(), "the scheduler notices it lost the Lease", 10,
                [leader], interval=0.05)
    lost = time.monotonic()

    second = await submit(bus, project, pool, 1)
    # While the intruder's Lease runs (4 s from its write), nothing is decided.
    await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - lost)))
    assert len(await bind_decisions(bus, project)) == 1
    assert not leader.leading()

    # The intruder never renews: the scheduler takes the Lease back and decides again.
    await until(leader.leading, "the scheduler leads again", 30, [leader])
    await until(lambda: _at_least(2, bind_decisions(bus, project)), "the second bind", 30,
                [leader])
    assert_decided_once(await bind_decisions(bus, project), first + second)
    renewed = coordination.read_namespaced_lease(f"scheduler-{tag}", "default")
    assert renewed.spec.holder_identity != "intruder"
    assert renewed.spec.lease_transitions == 1  # taken back from the intruder


async def _at_least(n: int, read):
    decisions = await read
    return decisions if len(decisions) >= n else None


# The elector alone, against kubesim, with a clock the test moves -------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(kubeconfig: Path, name: str, identity: str, clock=None) -> LeaderElector:
    async def nothing() -> None:
        return None

    return LeaderElector(LeaseLock("default", name, str(kubeconfig)), identity,
                         LeaseTimings(lease_seconds=10), on_started=nothing,
                         on_stopped=nothing, clock=clock or time.monotonic)


async def test_a_standby_waits_a_whole_lease_from_the_last_renewal_it_saw(kubeconfig, tag):
    name = f"unit-{tag}"
    a_clock, b_clock = Clock(), Clock()
    a = elector(kubeconfig, name, "a", a_clock)
    b = elector(kubeconfig, name, "b", b_clock)
    assert await a.try_acquire_or_renew() is Attempt.LEADING
    assert await b.try_acquire_or_renew() is Attempt.HELD
    b_clock.now += 9.9
    assert await b.try_acquire_or_renew() is Attempt.HELD  # not yet 10 s since seen
    assert await a.try_acquire_or_renew() is Attempt.LEADING  # a renews...
    b_clock.now += 5
    assert await b.try_acquire_or_renew() is Attempt.HELD  # ...so b counts from now on
    b_clock.now += 10
    assert await b.try_acquire_or_renew() is Attempt.LEADING  # a fell silent for a lease
    # The old leader learns it at its next renewal: someone else holds it.
    assert await a.try_acquire_or_renew() is Attempt.HELD
    lease = await b.lock.get()
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1


async def test_of_two_racing_for_a_free_lease_one_wins(kubeconfig, tag):
    name = f"race-{tag}"
    contenders = [elector(kubeconfig, name, f"c{i}") for i in range(4)]
    attempts = await asyncio.gather(*(c.try_acquire_or_renew() for c in contenders))
    assert attempts.count(Attempt.LEADING) == 1, attempts


async def test_a_released_lease_is_taken_at_once(kubeconfig, tag):
    name = f"release-{tag}"
    a = elector(kubeconfig, name, "a")
    b = elector(kubeconfig, name, "b")
    assert await a.try_acquire_or_renew() is Attempt.LEADING
    assert await b.try_acquire_or_renew() is Attempt.HELD
    await a.release()
    assert await b.try_acquire_or_renew() is Attempt.LEADING


async def test_a_lease_won_while_the_database_is_away_is_kept_and_loaded_by_the_cycle():
    """A standby that wins the Lease during a database outage (its leader died in it) leads
    without a state, and its cycle loads the state first when the database is back; it does
    not stop the service (which would hand the same outage to the next standby)."""
    from fairway_scheduler.leader import Leadership

    events: list[str] = []

    class Service:
        class runtime:
            @staticmethod
            def background(coro, name):
                return asyncio.ensure_future(coro)

        async def load(self):
            events.append("load")
            raise ConnectionRefusedError("the database is away")

        def reload_before_next_cycle(self):
            events.append("reload before the next cycle")

        async def run_cycles(self):
            events.append("cycling")

    leadership = object.__new__(Leadership)
    leadership.service, leadership.consumers, leadership._cycle = Service(), [], None
    await leadership._lead()
    await leadership._cycle
    assert events == ["load", "reload before the next cycle", "cycling"]
