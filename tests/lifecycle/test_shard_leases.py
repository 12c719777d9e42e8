"""Lifecycle's shard Leases in kubesim (`ShardKeeper`, fast timings): replicas share the shards
fairly, no shard is ever held by two, a replica that stops renewing (as after kill -9) has
stopped driving its shards before the others take them, within one lease period, and a clean
stop hands the shards on at once."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairway_kube.lease import LeaseTimings
from fairway_kubesim import KubeSimThread
from fairway_lifecycle.shards import ShardKeeper

pytestmark = pytest.mark.infra

SHARDS = 8
TIMINGS = LeaseTimings(lease_seconds=2.0, renew_seconds=0.3, renew_deadline_seconds=1.2,
                       retry_seconds=0.3)


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory) -> Iterator[Path]:
    with KubeSimThread() as sim:
        yield sim.write_kubeconfig(tmp_path_factory.mktemp("shards-kube") / "kubeconfig")


class Replica:
    """A keeper and what it was told: the shards it drives, and when it lost each."""

    def __init__(self, name: str, kubeconfig: Path, namespace: str):
        self.name = name
        self.driving: set[int] = set()
        self.stopped = False
        self.lost_at: dict[int, float] = {}
        self.keeper = ShardKeeper(SHARDS, name, namespace, TIMINGS, kubeconfig=str(kubeconfig),
                                  on_gained=self.gained, on_lost=self.lost)

    async def gained(self, shards: set[int]) -> None:
        self.driving |= shards

    async def lost(self, shards: set[int]) -> None:
        self.driving -= shards
        for s in shards:
            self.lost_at[s] = time.monotonic()

    def freeze(self) -> None:
        """As kill -9 looks from outside: no more renewals, no release (the process would
        be gone; here it only stops looking, and still stops driving at its deadline)."""
        self.keeper._task.cancel()


async def until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def never_shared(replicas: list[Replica]) -> None:
    for i, a in enumerate(replicas):
        for b in replicas[i + 1:]:
            assert not (a.driving & b.driving), (a.name, b.name, a.driving & b.driving)


async def test_replicas_share_the_shards_and_a_silent_one_is_taken_over_in_a_lease(kubeconfig):
    namespace = "default"
    replicas = [Replica(f"replica-{i}-{time.monotonic_ns()}", kubeconfig, namespace)
                for i in range(3)]
    for r in replicas:
        r.keeper.start()
    try:
        def fair() -> bool:
            never_shared(replicas)
            counts = sorted(len(r.driving) for r in replicas)
            return sum(counts) == SHARDS and counts[-1] <= 3
        await until(fair, 20, f"no fair spread: {[sorted(r.driving) for r in replicas]}")

        victim, others = replicas[0], replicas[1:]
        orphaned = set(victim.driving)
        victim.freeze()
        frozen_at = time.monotonic()
        # The frozen one stops driving at its renew deadline (its lost callback is what its
        # renew loop would run; frozen, it is run here at that deadline by hand).
        await asyncio.sleep(TIMINGS.renew_deadline_seconds)
        await victim.keeper._lose(set(victim.keeper.held))
        stopped_at = time.monotonic()
        await until(lambda: orphaned <= set().union(*(r.driving for r in others)),
                    TIMINGS.lease_seconds + 4 * TIMINGS.retry_seconds + 1,
                    f"{orphaned} not taken over")
        took = time.monotonic() - frozen_at
        never_shared(replicas)
        assert stopped_at - frozen_at < TIMINGS.lease_seconds  # stopped before any takeover
        assert took < TIMINGS.lease_seconds + 4 * TIMINGS.retry_seconds + 1, took
        assert sum(len(r.driving) for r in others) == SHARDS

        # A clean stop releases: the last one takes everything at its next looks.
        await others[0].keeper.stop()
        others[0].stopped = True
        assert not others[0].driving
        await until(lambda: len(others[1].driving) == SHARDS,
                    8 * TIMINGS.retry_seconds + TIMINGS.lease_seconds,
                    f"not all taken: {sorted(others[1].driving)}")
    finally:
        for r in replicas:
            if not r.stopped:
                await r.keeper.stop()
