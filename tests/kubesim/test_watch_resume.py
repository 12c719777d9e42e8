"""A watch resumed from any resourceVersion inside the retained window misses no event and
repeats none: in the store (every version, with a ring that has wrapped) and over HTTP with
the official client (every version between the start and the end of a pod lifecycle run,
including versions that belong to other resources and namespaces)."""

from __future__ import annotations

import random

import orjson
import pytest
from kubernetes import client

from fairway_kubesim.errors import ApiError
from fairway_kubesim.store import Store

from .conftest import bind, collect, make_pod, wait_pod


def test_store_resume_from_every_version_in_the_window() -> None:
    store = Store(history=60)
    pods = store.add("pods", "Pod", namespaced=True)
    nodes = store.add("nodes", "Node", namespaced=False)
    rng = random.Random(5)
    log: list[tuple[int, str, str]] = []  # (rv, type, name) of pod events
    alive: list[str] = []
    for i in range(400):
        roll = rng.random()
        if roll < 0.2:
            nodes.create({"metadata": {"name": f"n{i}"}})  # another resource's versions
        elif roll < 0.5 or not alive:
            name = f"p{i}"
            stored = pods.create({"metadata": {"name": name, "namespace": "ns"}, "status": {}})
            alive.append(name)
            log.append((int(stored.obj["metadata"]["resourceVersion"]), "ADDED", name))
        elif roll < 0.85:
            name = rng.choice(alive)
            stored = pods.mutate("ns", name, lambda o: o["status"].update(n=rng.random()))
            log.append((int(stored.obj["metadata"]["resourceVersion"]), "MODIFIED", name))
        else:
            name = alive.pop(rng.randrange(len(alive)))
            stored = pods.delete("ns", name)
            log.append((int(stored.obj["metadata"]["resourceVersion"]), "DELETED", name))
    assert pods.compacted_rv > 0  # the ring has wrapped
    checked = 0
    for since in range(1, store.rv + 1):
        if since < pods.compacted_rv:
            with pytest.raises(ApiError) as gone:
                pods.watch(None, None, since)
            assert gone.value.code == 410
            continue
        watcher = pods.watch(None, None, since)
        got = []
        for line in watcher.take().splitlines():
            event = orjson.loads(line)
            got.append((int(event["object"]["metadata"]["resourceVersion"]), event["type"],
                        event["object"]["metadata"]["name"]))
        pods.unwatch(watcher)
        assert got == [e for e in log if e[0] > since], since
        checked += 1
    assert checked > 50


def test_http_resume_from_every_version(api: client.CoreV1Api, ns: str) -> None:
    start = api.list_namespaced_pod(ns).metadata.resource_version
    names = [f"w{i}" for i in range(4)]
    for i, name in enumerate(names):
        api.create_namespaced_pod(ns, make_pod(name, {"sim.fairway.io/run-seconds": "0.1"}))
        bind(api, ns, name, "a100-1" if i % 2 else "t4-1")
    for name in names:
        wait_pod(api, ns, name, lambda p: p.status.phase == "Succeeded")
    for name in names:
        api.delete_namespaced_pod(name, ns)

    def done(evs: list[dict]) -> bool:
        return sum(e["type"] == "DELETED" for e in evs) == len(names)

    reference, _ = collect(api.list_namespaced_pod, ns, resource_version=start, until=done)
    ref = [(e["type"], e["object"].metadata.name, int(e["object"].metadata.resource_version))
           for e in reference]
    assert len({r[2] for r in ref}) == len(ref) and [r[2] for r in ref] == sorted(r[2] for r in ref)
    last = ref[-1][2]
    assert last - int(start) > len(ref)  # other versions (events, other namespaces) between
    for since in range(int(start), last):
        expected = [r for r in ref if r[2] > since]
        got_events, _ = collect(api.list_namespaced_pod, ns, resource_version=str(since),
                                until=lambda evs, n=len(expected): len(evs) >= n)
        got = [(e["type"], e["object"].metadata.name,
                int(e["object"].metadata.resource_version)) for e in got_events]
        assert got == expected, since
