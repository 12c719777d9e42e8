"""GPU sharing on the nodes: the reservation pods that hold shared devices, binding fraction
pods onto them, and taking back GPU memory that dynamic fractions borrowed.

Decisions are core/fractions.py's; this is the I/O around them. State is Kubernetes': the
reservation pods (watched) and the fraction pods (the controller's pod watch hands them in), so
a restart of lifecycle rebuilds it from a list.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from fairway_contracts.events import PodPlacement
from fairway_contracts.workloads import Compute
from fairway_kube import ListWatcher
from fairway_lifecycle.core.fractions import (
    ANN_BIND_NODE,
    ANN_DEVICES,
    ANN_RECLAIMED,
    ANN_UUIDS,
    LABEL_RESERVATION,
    Device,
    claimed_devices,
    fraction_annotations,
    memory_request_mib,
    reclaim_victims,
    reclaimed_message,
    reservation_name,
    reservation_of,
    reservation_pod,
    shared_devices,
    sharer,
)
from fairway_lifecycle.kube import Kube

log = logging.getLogger("fairway.lifecycle.sharing")

RESERVATIONS = Counter("fairway_lifecycle_gpu_reservations_total",
                       "Reservation pods created or deleted for shared GPU devices",
                       ["action"])
RECLAIMS = Counter("fairway_lifecycle_gpu_memory_reclaims_total",
                   "Fraction pods killed to take back GPU memory they borrowed above their "
                   "request")

Key = tuple[str, str]  # (namespace, pod name)


@dataclass
class FractionBind:
    """A fraction pod to bind once its devices are reserved."""

    namespace: str
    placement: PodPlacement
    compute: Compute
    by: str  # the workload's name, for the reclaimed pods' message
    since: float

    @property
    def key(self) -> Key:
        return (self.namespace, self.placement.pod)

    @property
    def devices(self) -> list[Device]:
        return [(self.placement.node, i) for i in self.placement.gpu_devices]


class GpuSharing:
    def __init__(self, kube: Kube, *, image: str, namespace: str, timeout_seconds: float,
                 check_seconds: float, resync_seconds: float):
        self.kube = kube
        self.image = image
        self.namespace = namespace
        self.timeout_seconds = timeout_seconds
        self.check_seconds = check_seconds
        self._poked = asyncio.Event()
        self.resync_seconds = resync_seconds
        self.reservations: dict[Device, str | None] = {}  # device -> the UUID it reported
        self._created: dict[Device, float] = {}  # reservations this process created, when
        # reservation pods that ended (their node refused them at admission, or they exited):
        # deleted at the next check, and made again while a fraction waits for the device
        self._ended: dict[Device, str] = {}
        self.sharers: dict[Device, dict[Key, dict[str, Any]]] = {}  # bound fraction pods
        self._pod_devices: dict[Key, list[Device]] = {}
        self.claims: dict[Device, dict[Key, float]] = {}  # binds in flight
        # unbound fraction pods on their way to devices (their node written on them), whoever
        # binds them: another replica's binds in flight
        self._pod_claims: dict[Key, list[Device]] = {}
        self.node_memory: dict[str, int] = {}
        self.waiting: dict[Key, FractionBind] = {}  # fraction pods waiting for reservations
        self._tasks: set[asyncio.Task] = set()
        # unbound fraction pods that carry their node, from the pods lifecycle watches
        self.find_unbound: Callable[[], Iterable[FractionBind]] = list
        # nodes where the node-level scheduler is on: it ends bursts by restarting GPU
        # processes under lower limits, so no pod is killed to take borrowed memory back
        self.limits_bursts: Callable[[str], bool] = lambda node: False
        # told of each bind that claims devices of a node (the node-level scheduler sends a
        # process visiting one of them home before the new pod arrives)
        self.on_claim: Callable[[str], None] = lambda node: None
        self._synced = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: ListWatcher | None = None

    # wiring ---------------------------------------------------------------------------------
    def start(self, runtime: Any, pods_loaded: asyncio.Event, *, watch: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        if watch:
            self._watcher = ListWatcher(
                self.kube.core.list_pod_for_all_namespaces, self._on_thread,
                name="gpu-reservations", label_selector=f"{LABEL_RESERVATION}=true",
                resync_seconds=self.resync_seconds,
                on_synced=lambda: self._loop.call_soon_threadsafe(self._synced.set))
            self._watcher.start()
        else:
            self._synced.set()
        runtime.background(self._keep(pods_loaded), "gpu-reservations")

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def put_node(self, name: str, gpu_memory_mib: int | None, deleted: bool = False) -> None:
        if deleted or not gpu_memory_mib:
            self.node_memory.pop(name, None)
        else:
            self.node_memory[name] = gpu_memory_mib

    # reservation pods (watch) -----------------------------------------------------------------
    def _on_thread(self, kind: str, pod: dict[str, Any]) -> None:
        self._loop.call_soon_threadsafe(self.on_reservation, kind, pod)

    def on_reservation(self, kind: str, pod: dict[str, Any]) -> None:
        found = reservation_of(pod)
        if found is None or pod["metadata"].get("namespace") != self.namespace:
            return
        device, uuid = found
        if kind == "DELETED":
            self.reservations.pop(device, None)
        elif pod["metadata"].get("deletionTimestamp"):
            self.reservations.pop(device, None)  # going: a new one will be made if needed
        elif (status := pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            # It holds nothing and never will: a waiting bind would wait for it for ever.
            self.reservations.pop(device, None)
            self._ended[device] = status.get("message") or status.get("reason") or "ended"
            self.poke()
            return
        else:
            if device not in self.reservations and kind == "ADDED":
                # Made by another replica (or before a restart) for a bind on its way: it
                # gets the same time as one of ours before it may go as unused.
                self._created.setdefault(device, time.monotonic())
            self.reservations[device] = uuid
        if uuid:
            self._bind_ready()

    # fraction pods (the controller's pod watch) -------------------------------------------------
    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        devices = [] if kind == "DELETED" else shared_devices(pod)
        for device in self._pod_devices.pop(key, []):
            holders = self.sharers.get(device)
            if holders is not None:
                holders.pop(key, None)
                if not holders:
                    del self.sharers[device]
        for device in devices:
            self.sharers.setdefault(device, {})[key] = pod
            self._unclaim(device, key)
            # the bind it was made for came: once no fraction uses it, it may go at once
            self._created.pop(device, None)
        if devices:
            self._pod_devices[key] = devices
        claimed = [] if kind == "DELETED" else claimed_devices(pod)
        if claimed:
            self._pod_claims[key] = claimed
        else:
            self._pod_claims.pop(key, None)
        if kind == "DELETED":
            for device in list(self.claims):
                self._unclaim(device, key)

    def _unclaim(self, device: Device, key: Key) -> None:
        claims = self.claims.get(device)
        if claims is not None:
            claims.pop(key, None)
            if not claims:
                del self.claims[device]

    def in_use(self, now: float) -> set[Device]:
        """Devices some fraction shares or is being bound to."""
        used = set(self.sharers)
        for devices in self._pod_claims.values():
            used.update(devices)
        for device, claims in self.claims.items():
            if any(now - since < self.timeout_seconds + 30 for since in claims.values()):
                used.add(device)
        return used

    # binding ----------------------------------------------------------------------------------
    async def bind(self, namespace: str, placement: PodPlacement, compute: Compute,
                   by: str) -> None:
        """Bind a fraction pod: at once when its devices' reservation pods have reported; else
        its node is written on the pod (a restart finds it there), the missing reservations
        are made, and it is bound when they report. The caller does not wait for that: one
        new device's reservation must not hold back every other bind."""
        key = (namespace, placement.pod)
        devices = [(placement.node, i) for i in placement.gpu_devices]
        now = time.monotonic()
        for device in devices:
            self.claims.setdefault(device, {})[key] = now
        self.on_claim(placement.node)
        job = FractionBind(namespace, placement, compute, by, now)
        if all(self.reservations.get(d) for d in devices):
            await self._complete(job)
            return
        if await self.kube.annotate(namespace, placement.pod, {
                ANN_DEVICES: ",".join(map(str, placement.gpu_devices)),
                ANN_BIND_NODE: placement.node}) == "gone":
            self._release(job)
            return
        self.waiting[key] = job
        for device in devices:
            if device not in self.reservations:
                await self._reserve(device)
        self._bind_ready()  # reported meanwhile

    def _bind_ready(self) -> None:
        ready = [job for job in self.waiting.values()
                 if all(self.reservations.get(d) for d in job.devices)]
        for job in ready:
            del self.waiting[job.key]
            task = asyncio.ensure_future(self._complete(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _complete(self, job: "FractionBind") -> None:
        """The devices are reserved: take back borrowed memory the pod's request needs, write
        its device UUIDs and limits, bind it."""
        placement = job.placement
        try:
            memory = self.node_memory.get(placement.node)
            wanted = memory_request_mib(job.compute, memory)
            if memory and wanted and not self.limits_bursts(placement.node):
                for device in job.devices:
                    await self._take_back(device, job.key, memory, wanted, job.by)
            notes = fraction_annotations(job.compute, placement.gpu_devices,
                                         [self.reservations.get(d) or "" for d in job.devices],
                                         memory)
            if await self.kube.annotate(job.namespace, placement.pod, notes) == "gone":
                self._release(job)
                return
            outcome = await self.kube.bind(job.namespace, placement.pod, placement.node)
            log.info("pod %s → node %s, GPU %s: %s", placement.pod, placement.node,
                     notes[ANN_UUIDS], outcome)
            if outcome == "gone":
                self._release(job)
        except Exception:
            # Kubernetes answered badly: the pod stays where the scheduler put it on paper;
            # the next check finds it unbound and tries again.
            log.exception("binding fraction pod %s failed; trying again", placement.pod)
            self.waiting.setdefault(job.key, job)

    def _release(self, job: "FractionBind") -> None:
        for device in job.devices:
            self._unclaim(device, job.key)

    def recover(self, jobs: Iterable["FractionBind"]) -> None:
        """Fraction pods found unbound with their node written on them (a restart between
        the decision and the bind): bound once their reservations report."""
        for job in jobs:
            if job.key not in self.waiting:
                self.waiting[job.key] = job
                for device in job.devices:
                    self.claims.setdefault(device, {})[job.key] = job.since

    async def _reserve(self, device: Device) -> None:
        await self.kube.ensure_namespace(self.namespace)
        pod = reservation_pod(*device, self.image, self.namespace)
        if await self.kube.create_pod(pod):
            RESERVATIONS.labels("created").inc()
            log.info("reserved device %s of node %s (%s)", device[1], device[0],
                     pod["metadata"]["name"])
        self._created[device] = time.monotonic()
        self.reservations.setdefault(device, None)

    async def _take_back(self, device: Device, key: Key, memory: int, wanted: int,
                         by: str) -> None:
        others = [sharer(p) for k, p in self.sharers.get(device, {}).items() if k != key]
        for victim in reclaim_victims(memory, others, wanted):
            message = reclaimed_message(victim, by)
            log.info("pod %s/%s: %s", victim.namespace, victim.name, message)
            # The reason first, on the pod, for the fold; then the pod goes at once (the
            # memory is wanted now), whatever its priority: its request stays guaranteed.
            if await self.kube.annotate(victim.namespace, victim.name,
                                        {ANN_RECLAIMED: message}) == "patched":
                await self.kube.delete_pod(victim.namespace, victim.name, grace_seconds=0)
                RECLAIMS.inc()
            self.sharers.get(device, {}).pop((victim.namespace, victim.name), None)

    async def clear_for_whole(self, node: str, devices: Iterable[int]) -> None:
        """A pod is about to be bound to whole `devices` of `node`. The scheduler counts them
        free of fractions, but a reservation pod may still be there (its last fraction just
        ended, the check that releases it has not run): the kubelet counts it and would refuse
        the pod. Reservations of these devices that no fraction uses go first, and so do the
        node's other unused ones past their grace."""
        now = time.monotonic()
        used = self.in_use(now)
        mine = {(node, index) for index in devices}
        for device in sorted(d for d in self.reservations if d[0] == node and d not in used):
            created = self._created.get(device)
            if device not in mine and created is not None and now - created < self.timeout_seconds:
                continue  # made for a bind still on its way
            await self._release_reservation(device)

    async def _release_reservation(self, device: Device) -> None:
        await self.kube.delete_pod(self.namespace, reservation_name(*device), grace_seconds=0)
        self.reservations.pop(device, None)
        self._created.pop(device, None)
        RESERVATIONS.labels("deleted").inc()
        log.info("released device %s of node %s: no fraction uses it", device[1], device[0])

    # keeping reservations right ---------------------------------------------------------------
    async def _keep(self, pods_loaded: asyncio.Event) -> None:
        """Reservations of devices no fraction uses any more go; those that vanished while
        fractions use the device come back. After both lists are in (a restart)."""
        await asyncio.gather(self._synced.wait(), pods_loaded.wait())
        while True:
            try:
                await self.converge()
            except Exception:
                log.exception("keeping the GPU reservations failed; trying again")
            try:  # every check_seconds, or at once when a node refused a pod
                await asyncio.wait_for(self._poked.wait(), self.check_seconds)
            except TimeoutError:
                pass
            self._poked.clear()

    def poke(self) -> None:
        """A node refused a pod it was bound to: a reservation pod of a device no fraction
        uses any more may still hold it (the scheduler counts only fractions there). Such
        reservations go now rather than at the next check, so the pod, made again, fits."""
        self._poked.set()

    async def converge(self) -> None:
        now = time.monotonic()
        self.recover(self.find_unbound())
        for device, why in sorted(self._ended.items()):
            await self.kube.delete_pod(self.namespace, reservation_name(*device),
                                       grace_seconds=0)
            del self._ended[device]
            self._created.pop(device, None)
            log.warning("reservation pod %s ended (%s): deleted; made again while a fraction "
                        "waits for device %s of node %s", reservation_name(*device), why,
                        device[1], device[0])
        for device in sorted({d for job in self.waiting.values() for d in job.devices}
                             - set(self.reservations)):
            await self._reserve(device)  # (one that ended, or one never made)
        self._bind_ready()
        for job in [j for j in self.waiting.values() if now - j.since > self.timeout_seconds]:
            # Its devices could not be reserved: the pod is made again and placed again,
            # rather than waiting bound to nothing.
            del self.waiting[job.key]
            self._release(job)
            missing = [reservation_name(*d) for d in job.devices
                       if not self.reservations.get(d)]
            log.warning("pod %s/%s not bound: the reservation pod(s) %s in namespace %s did "
                        "not report their device within %g s; making it again", job.namespace,
                        job.placement.pod, ", ".join(missing), self.namespace,
                        self.timeout_seconds)
            await self.kube.delete_pod(job.namespace, job.placement.pod, grace_seconds=0)
        used = self.in_use(now)
        for device in sorted(set(self.reservations) - used):
            created = self._created.get(device)
            if created is not None and now - created < self.timeout_seconds:
                continue  # made for a bind still on its way
            await self._release_reservation(device)
        for device in sorted(used - set(self.reservations)):
            if device in self.sharers:  # fractions run on it: it must stay reserved
                await self._reserve(device)

    def devices(self) -> Iterable[Device]:
        return self.reservations.keys()
