"""Kubernetes calls wait for a worker thread in two lines: calls made under `urgent_calls`
(lifecycle's bindings and evictions) go before the rest (pod creations), and a caller
cancelled while waiting gives up its turn without losing a worker."""

import asyncio
import threading

import pytest

from fairway_kube import ThreadedCalls, urgent_calls


class Blocked:
    """Calls that hold their worker until released, recording the order they started in."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = threading.Event()

    def call(self, name: str):
        def run() -> tuple[int, bytes]:
            self.started.append(name)
            self.release.wait(5)
            return 200, b'{"name": "%s"}' % name.encode()

        return run


async def _until(predicate, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_urgent_calls_go_before_those_waiting_longer():
    calls, blocked = ThreadedCalls(1, "test"), Blocked()
    try:
        first = asyncio.create_task(calls.run(blocked.call("create-1")))
        await _until(lambda: blocked.started == ["create-1"])
        waiting = [asyncio.create_task(calls.run(blocked.call(f"create-{n}")))
                   for n in (2, 3)]
        await asyncio.sleep(0.01)  # the creations wait first

        async def bind() -> tuple[int, object]:
            with urgent_calls():
                return await calls.run(blocked.call("bind"))

        urgent = asyncio.create_task(bind())
        await asyncio.sleep(0.01)
        blocked.release.set()
        answers = await asyncio.gather(first, *waiting, urgent)
    finally:
        calls.close()
    assert blocked.started == ["create-1", "bind", "create-2", "create-3"]
    assert answers[-1] == (200, {"name": "bind"})


async def test_outside_urgent_calls_the_calls_keep_their_order():
    calls, blocked = ThreadedCalls(1, "test"), Blocked()
    try:
        with urgent_calls():
            pass  # the mark ends with its block
        tasks = []
        for n in range(4):
            tasks.append(asyncio.create_task(calls.run(blocked.call(f"call-{n}"))))
            await asyncio.sleep(0.005)
        blocked.release.set()
        await asyncio.gather(*tasks)
    finally:
        calls.close()
    assert blocked.started == ["call-0", "call-1", "call-2", "call-3"]


async def test_a_caller_cancelled_while_waiting_gives_up_its_turn_and_no_worker_is_lost():
    calls, blocked = ThreadedCalls(2, "test"), Blocked()
    try:
        holding = [asyncio.create_task(calls.run(blocked.call(f"hold-{n}"))) for n in (1, 2)]
        await _until(lambda: len(blocked.started) == 2)
        gone = asyncio.create_task(calls.run(blocked.call("cancelled")))
        later = asyncio.create_task(calls.run(blocked.call("later")))
        await asyncio.sleep(0.01)
        gone.cancel()
        blocked.release.set()
        await asyncio.gather(*holding, later)
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert "cancelled" not in blocked.started
        # both workers are free again: two calls run at the same time
        both = threading.Barrier(2, timeout=2)

        def meet() -> tuple[int, bytes]:
            both.wait()
            return 200, b""

        assert await asyncio.gather(calls.run(meet), calls.run(meet)) == [(200, None)] * 2
    finally:
        calls.close()


async def test_a_failing_call_frees_its_worker():
    calls = ThreadedCalls(1, "test")

    def broken() -> tuple[int, bytes]:
        raise ConnectionError("refused")

    try:
        with pytest.raises(ConnectionError):
            await calls.run(broken)
        assert await asyncio.wait_for(calls.run(lambda: (200, b"[]")), 2) == (200, [])
    finally:
        calls.close()
