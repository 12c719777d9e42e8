"""The node-level scheduler's decision (pure): scenario tables of a node's devices and its
fractions, the device and memory limit each fraction's GPU process gets, and the moves."""

import pytest

from fairway_lifecycle.core.nodelevel import GpuDevice, Placement, SharingPod, moves, place

GIB = 1024
MEM = 80 * GIB


def gpus(n: int, *claimed: int) -> list[GpuDevice]:
    return [GpuDevice(i, MEM, claimed=i in claimed) for i in range(n)]


def pod(name: str, home: int, current: int | None = None, request: float = 0.5,
        limit: float = 1.0, active: bool = True) -> SharingPod:
    return SharingPod(("ns", name), home, home if current is None else current,
                      int(request * MEM), int(limit * MEM), active)


def at(device: int, limit: float) -> Placement:
    return Placement(device, int(limit * MEM))


@pytest.mark.parametrize(("why", "devices", "pods", "expected", "moved"), [
    ("two bursting notebooks on device 0, device 1 idle: one spreads, both may use a "
     "whole GPU",
     gpus(2), [pod("a", 0), pod("b", 0)],
     {"a": at(0, 1.0), "b": at(1, 1.0)}, [("b", 0, 1, "spread")]),
    ("a new pod is placed on the visited device: the visitor goes home and both at home "
     "keep to their requests (never two bursting pods above the device's memory)",
     gpus(2), [pod("a", 0), pod("b", 0, current=1), pod("c", 1)],
     {"a": at(0, 0.5), "b": at(0, 0.5), "c": at(1, 1.0)}, [("b", 1, 0, "consolidate")]),
    ("a pod holding the whole visited device: the visitor goes home",
     gpus(2, 1), [pod("a", 0), pod("b", 0, current=1)],
     {"a": at(0, 0.5), "b": at(0, 0.5)}, [("b", 1, 0, "consolidate")]),
    ("stable: spread already, nothing changed, nothing moves",
     gpus(2), [pod("a", 0), pod("b", 0, current=1)],
     {"a": at(0, 1.0), "b": at(1, 1.0)}, []),
    ("an idle notebook is not moved (it does not use the GPU); the active one spreads",
     gpus(3), [pod("a", 0, active=False), pod("b", 0), pod("c", 0, request=0.25, limit=0.25,
                                                             active=True)],
     {"a": at(0, 0.5 + 0.25), "b": at(1, 1.0), "c": at(0, 0.25)},
     [("b", 0, 1, "spread")]),
    ("not burstable (limit = request): never moved",
     gpus(2), [pod("a", 0, limit=0.5), pod("b", 0, limit=0.5)],
     {"a": at(0, 0.5), "b": at(0, 0.5)}, []),
    ("alone on its device: it can burst there already, nothing moves",
     gpus(2), [pod("a", 0)], {"a": at(0, 1.0)}, []),
    ("more burstable pods than idle devices: the highest limits move, the rest share",
     gpus(3), [pod("a", 0, 0, 0.25, 0.5), pod("b", 0, 0, 0.25, 1.0), pod("c", 0, 0, 0.25, 0.75),
               pod("d", 0, 0, 0.25, 0.25)],
     {"b": at(1, 1.0), "c": at(2, 0.75), "a": at(0, 0.5), "d": at(0, 0.25)},
     [("b", 0, 1, "spread"), ("c", 0, 2, "spread")]),
    ("burst room on a shared device goes to pods at home first, then by name",
     gpus(1), [pod("a", 0, 0, 0.25, 1.0), pod("b", 0, 0, 0.25, 1.0)],
     {"a": at(0, 0.75), "b": at(0, 0.25)}, []),
    ("two visitors on one device (a restart of lifecycle in between): the first keeps it",
     gpus(3), [pod("a", 0, current=2), pod("b", 0, current=2), pod("c", 1)],
     {"a": at(2, 1.0), "b": at(0, 1.0), "c": at(1, 1.0)}, [("b", 2, 0, "consolidate")]),
    ("a visitor on a device the node no longer has: home",
     gpus(1), [pod("a", 0), pod("b", 0, current=5)],
     {"a": at(0, 0.5), "b": at(0, 0.5)}, [("b", 5, 0, "consolidate")]),
    ("a whole-GPU pod on the only idle device: nobody spreads",
     gpus(2, 1), [pod("a", 0), pod("b", 0)],
     {"a": at(0, 0.5), "b": at(0, 0.5)}, []),
])
def test_node_level_decision(why, devices, pods, expected, moved):
    placements = place(devices, pods)
    assert {k[1]: v for k, v in placements.items()} == expected, why
    assert [(m.key[1], m.from_device, m.to_device, m.reason)
            for m in moves(pods, placements)] == moved, why
    # applying the moves changes nothing more: the decision is stable
    after = [pod_at(p, placements[p.key].device) for p in pods]
    again = place(devices, after)
    assert again == placements and moves(after, again) == [], why


def pod_at(p: SharingPod, device: int) -> SharingPod:
    return SharingPod(p.key, p.home, device, p.request_mib, p.limit_mib, p.active)


@pytest.mark.parametrize("seed", range(40))
def test_no_device_ever_holds_more_than_its_memory(seed):
    import random

    rng = random.Random(seed)
    devices = [GpuDevice(i, MEM, claimed=rng.random() < 0.2) for i in range(rng.randint(1, 4))]
    homes = [d.index for d in devices if not d.claimed] or [0]
    pods, used = [], {i: 0.0 for i in homes}
    for n in range(rng.randint(1, 6)):
        home = rng.choice(homes)
        request = rng.choice([0.1, 0.25, 0.5])
        if used[home] + request > 1:
            continue
        used[home] += request
        pods.append(pod(f"p{n}", home, rng.choice([home, rng.randrange(4)]), request,
                        rng.choice([request, 0.5, 0.75, 1.0]) if request <= 0.5 else request,
                        rng.random() < 0.7))
    placements = place(devices, pods)
    for d in devices:
        there = [placements[p.key].memory_limit_mib for p in pods
                 if placements[p.key].device == d.index]
        assert sum(there) <= d.memory_mib, (devices, pods, placements)
    for p in pods:
        assert p.request_mib <= placements[p.key].memory_limit_mib <= p.limit_mib
