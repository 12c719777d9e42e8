"""The store on its own: versions, the event ring's window, selector transitions and slow
watchers. Synchronous, no HTTP."""

from __future__ import annotations

import orjson
import pytest

from fairway_kubesim.errors import ApiError
from fairway_kubesim.selectors import parse_field_selector
from fairway_kubesim.store import Store


def pod(name: str, phase: str = "Pending") -> dict:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "ns", "uid": name},
            "status": {"phase": phase}}


def lines(watcher) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    out = []
    for line in watcher.take().splitlines():
        event = orjson.loads(line)
        out.append((event["type"], event["object"]["metadata"]["name"],
                    event["object"]["metadata"]["resourceVersion"]))
    return out


def make(history: int = 100) -> tuple[Store, object]:
    store = Store(history=history)
    return store, store.add("pods", "Pod", namespaced=True)


def test_every_write_bumps_the_global_version() -> None:
    store, pods = make()
    a = pods.create(pod("a"))
    b = pods.create(pod("b"))
    moved = pods.mutate("ns", "a", lambda o: o["status"].update(phase="Running"))
    gone = pods.delete("ns", "b")
    versions = [s.obj["metadata"]["resourceVersion"] for s in (a, b, moved, gone)]
    assert versions == ["1", "2", "3", "4"] and store.rv == 4
    assert a.obj["status"]["phase"] == "Pending"  # stored versions are never changed
    with pytest.raises(ApiError) as info:
        pods.create(pod("a"))
    assert info.value.code == 409
    with pytest.raises(ApiError) as info:
        pods.delete("ns", "b")
    assert info.value.code == 404


def test_the_ring_window_and_410() -> None:
    _, pods = make(history=3)
    for name in "abcde":
        pods.create(pod(name))  # versions 1..5; the ring keeps 3, 4, 5
    assert pods.compacted_rv == 2
    assert [n for _, n, _ in lines(pods.watch(None, None, since=2))] == ["c", "d", "e"]
    assert [n for _, n, _ in lines(pods.watch(None, None, since=4))] == ["e"]
    assert lines(pods.watch(None, None, since=5)) == []
    with pytest.raises(ApiError) as info:
        pods.watch(None, None, since=1)
    assert (info.value.code, info.value.reason) == (410, "Expired")


def test_selector_transitions_become_added_and_deleted() -> None:
    _, pods = make()
    running = pods.watch("ns", parse_field_selector("status.phase=Running", "pods"), since=0)
    pods.create(pod("a"))
    pods.mutate("ns", "a", lambda o: o["status"].update(phase="Running"))
    pods.mutate("ns", "a", lambda o: o["metadata"].update(labels={"x": "y"}))
    pods.mutate("ns", "a", lambda o: o["status"].update(phase="Succeeded"))
    pods.delete("ns", "a")
    assert [(t, n) for t, n, _ in lines(running)] == [
        ("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_slow_watchers_are_closed_but_their_backlog_is_not_too_slow() -> None:
    _, pods = make()
    for i in range(10):
        pods.create(pod(f"p{i}"))
    watcher = pods.watch(None, None, since=None, max_queue=2)
    assert not watcher.closed and len(watcher.buf) == 10  # the initial state
    pods.create(pod("x"))
    pods.create(pod("y"))
    assert not watcher.closed
    pods.create(pod("z"))  # the third unread live event is one too many
    assert watcher.closed and watcher.overflowed
    assert [n for _, n, _ in lines(watcher)][-2:] == ["x", "y"]
    replay = pods.watch(None, None, since=0, max_queue=1)
    assert len(replay.buf) == 13 and not replay.closed
