"""The simulated kubelets of every node, driven by one timer.

The kubelet listens to pod writes in the store. A pod that gets a `spec.nodeName` is admitted
by that node's kubelet, which then walks it through its stages on a clock:

    admit ──▶ sandbox ready, image pull (waiting: ContainerCreating)     pull-seconds
          ──▶ containers running, not ready                              start-seconds
          ──▶ Ready                                                      run-seconds
          ──▶ main container exits (exit-code) ──▶ phase from restartPolicy
                 Never / OnFailure+0: Succeeded or Failed (terminal)
                 Always / OnFailure+≠0: waiting CrashLoopBackOff, restart after back-off

Annotations change the walk: `image-pull: fail` loops ErrImagePull ⇄ ImagePullBackOff (with
back-off) instead of starting; `crash: loop` exits with 1 right after each start;
`oom-after-seconds` ends the main container with OOMKilled (137) that long after it started.
Back-offs start at the profile's `backoffSeconds` and double up to `backoffMaxSeconds`.
`gpu-utilization` is reported as the `kubesim.fairway.io/gpu-utilization` annotation while a
GPU pod runs. The kubelets record core/v1 Events (Pulling, Pulled, Created, Started, Killing,
BackOff, Failed, OOMKilling). A node made NotReady (`set_node_ready`) freezes its pods
(phase Unknown, Ready False) and evicts them after `nodeEvictionSeconds`.

Deleting a running pod lets its containers run out the grace period, then kills them (137),
writes the terminal status and removes the pod; pods whose containers are not running are
removed at once. All due transitions sit in one heap served by one `loop.call_at` timer, not
one task per pod. Each transition rewrites the kubelet-owned part of the pod status.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import logging
import os
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .events import EventLog
from .objects import (
    GPU_RESOURCE,
    SIM_PREFIX,
    active_at,
    gpu_activity,
    gpu_memory_steps,
    node_conditions,
    node_is_ready,
    not_ready_taints,
    now_rfc3339,
    pod_requests,
)
from .profile import Timings
from .quantity import parse_quantity
from .services import config_maps_needed
from .store import ADDED, DELETED, MODIFIED, Event, Resource, Store, Stored

log = logging.getLogger("fairway_kubesim.kubelet")

# Pod stages, as this kubelet sees them.
NEW = "New"                # bound, not yet admitted
CREATING = "Creating"      # sandbox up, pulling images
STARTING = "Starting"      # containers running, not ready yet
READY = "Ready"            # running and ready
BACKOFF = "BackOff"        # waiting to restart exited containers
TERMINAL = "Terminal"      # phase Succeeded / Failed: nothing more happens
REJECTED = "Rejected"      # admission failed (phase Failed)

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
GPU_UTILIZATION_ANNOTATION = "kubesim.fairway.io/gpu-utilization"
# GPU devices (see docs/kubesim.md, "GPU devices"). The simulated device plugin gives a pod that
# requests nvidia.com/gpu concrete devices of its node and says which; a GPU fraction (no
# nvidia.com/gpu of its own) uses the devices named in its fairway.io/gpu-uuids annotation,
# with the GPU memory its sim.fairway.io/gpu-memory-used annotation says, and is killed as a
# CUDA interposer (HAMi-core) would kill it above fairway.io/gpu-memory-limit-mib.
DEVICES_ANNOTATION = "kubesim.fairway.io/gpu-uuids"
MEMORY_USED_ANNOTATION = "kubesim.fairway.io/gpu-memory-used-mib"
SHARED_UUIDS_ANNOTATION = "fairway.io/gpu-uuids"
MEMORY_REQUEST_ANNOTATION = "fairway.io/gpu-memory-request-mib"
MEMORY_LIMIT_ANNOTATION = "fairway.io/gpu-memory-limit-mib"
# The node-level scheduler (lifecycle) says on which of the node's devices a fraction's GPU
# process runs now, and the GPU memory it may use there; when either changes the GPU process
# restarts there (the pod and its containers do not), counted in GPU_RESTARTS_ANNOTATION.
CURRENT_DEVICES_ANNOTATION = "fairway.io/gpu-current-devices"
CURRENT_LIMIT_ANNOTATION = "fairway.io/gpu-current-memory-limit-mib"
GPU_RESTARTS_ANNOTATION = "kubesim.fairway.io/gpu-process-restarts"
GPU_RESTARTED_REASON = "GpuProcessRestarted"
# GPU memory swap (see docs/kubesim.md, "GPU memory swap"): lifecycle writes how much of a
# fraction's GPU memory is to be swapped out to host memory (0: swapped in); the node reports
# whether its GPU process wants the GPU now (from sim.fairway.io/gpu-active), what is swapped
# out now per pod, and per node the host memory that takes.
SWAP_ANNOTATION = "fairway.io/gpu-swapped-mib"
ACTIVE_ANNOTATION = "kubesim.fairway.io/gpu-active"
SWAPPED_ANNOTATION = "kubesim.fairway.io/gpu-swapped-mib"
NODE_SWAP_USED_ANNOTATION = "kubesim.fairway.io/gpu-swap-used-mib"
SWAPPED_OUT_REASON = "GpuMemorySwappedOut"
SWAPPED_IN_REASON = "GpuMemorySwappedIn"
PAIRED_SWAP_SECONDS = 0.5  # moves on one node due this close together complete together
# A reservation pod (lifecycle's, holding a shared device) runs a program that writes the UUID
# the device plugin gave it into its own annotation: kubesim plays that program.
RESERVATION_LABEL = "fairway.io/gpu-reservation"
RESERVED_UUID_ANNOTATION = "fairway.io/gpu-uuid"
GPU_OOM_REASON = "GPUOutOfMemory"
_ALWAYS = -1  # a heap entry no newer transition cancels (GPU memory steps)
DEFAULT_GPU_UTILIZATION = 80.0
CRASH_AFTER_SECONDS = 0.05  # `crash: loop`: how long the container runs before it exits
# A pod whose ConfigMap volume finds no ConfigMap stays ContainerCreating; the kubelet tries the
# mount again this often (and at once when a ConfigMap of its namespace is created), and
# repeats its FailedMount event at most this often.
MOUNT_RETRY_SECONDS = 1.0
MOUNT_EVENT_SECONDS = 30.0
# For benchmarks: when set, every status the kubelets write is logged to this file as
# "<CLOCK_MONOTONIC seconds> <namespace>/<name> <phase> <ready>", the moment it is stored (and
# its watch events queued), so a latency can be measured from the change itself rather than
# from when some watcher happened to read it. CLOCK_MONOTONIC is one clock for every process.
STATUS_LOG_ENV = "FAIRWAY_KUBESIM_STATUS_LOG"
_BATCH = 64  # transitions per timer callback before yielding to the loop (keeps requests
#             and watch delivery from waiting behind a burst of due transitions)


@dataclass(slots=True)
class ContainerSim:
    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str | None = "ContainerCreating"
    message: str | None = None
    exit_code: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    container_id: str | None = None
    image_id: str = ""
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    last_state: dict[str, Any] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        if self.state == "running":
            state: dict[str, Any] = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            term: dict[str, Any] = {"exitCode": self.exit_code, "reason": self.reason,
                                    "startedAt": self.started_at,
                                    "finishedAt": self.finished_at}
            if self.message:
                term["message"] = self.message
            if self.container_id:
                term["containerID"] = self.container_id
            state = {"terminated": term}
        else:
            waiting: dict[str, Any] = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        out: dict[str, Any] = {}
        if self.container_id:
            out["containerID"] = self.container_id
        out.update({"image": self.image, "imageID": self.image_id, "lastState": self.last_state,
                    "name": self.name, "ready": self.ready,
                    "restartCount": self.restart_count, "started": self.started,
                    "state": state})
        return out

    def start(self, when: str) -> None:
        self.state, self.reason, self.message = "running", None, None
        self.started_at, self.finished_at = when, None
        self.container_id = "containerd://" + secrets.token_hex(32)
        self.image_id = _image_id(self.image)
        self.started, self.ready = True, False

    def terminate(self, when: str, exit_code: int, reason: str | None = None,
                  message: str | None = None) -> None:
        if self.state != "running":
            self.started_at = self.started_at or when
        self.state = "terminated"
        self.exit_code = exit_code
        self.reason = reason or ("Completed" if exit_code == 0 else "Error")
        self.message = message
        self.finished_at = when
        self.ready = self.started = False


@dataclass(slots=True)
class Behaviour:
    """What a pod's `sim.fairway.io/*` annotations ask of it."""

    pull_seconds: float
    start_seconds: float
    run_seconds: float | None
    exit_code: int
    image_pull_fails: bool = False
    crash_loop: bool = False
    oom_after: float | None = None
    gpu_utilization: float = DEFAULT_GPU_UTILIZATION
    # GPU fractions: memory in use (MiB) from each step's second after the containers start,
    # and the limit above which the process fails
    gpu_memory: tuple[tuple[float, int], ...] = ()
    gpu_memory_limit: int | None = None
    # (active, seconds) phases repeated from the GPU process's start; (): always active
    gpu_active: tuple[tuple[bool, float], ...] = ()

    def gpu_oom_after(self) -> float | None:
        """Seconds after the start at which GPU memory first goes above the limit."""
        if self.gpu_memory_limit is None:
            return None
        return next((t for t, mib in self.gpu_memory if mib > self.gpu_memory_limit), None)

    def gpu_memory_at(self, elapsed: float) -> int | None:
        used = None
        for t, mib in self.gpu_memory:
            if t <= elapsed + 1e-6:
                used = mib
        return used


@dataclass(eq=False, slots=True)
class PodSim:
    namespace: str
    name: str
    uid: str
    node: str
    restart_policy: str
    containers: list[ContainerSim]
    behaviour: Behaviour
    stage: str = NEW
    token: int = 0  # bumped to cancel pending transitions
    ip: str | None = None
    ip_slot: int | None = None
    start_time: str | None = None
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleting: bool = False
    kill_due: float | None = None
    exit_due: float | None = None
    delete_grace: int | None = None
    requests: dict[str, float] = field(default_factory=dict)
    active: bool = False  # counted against its node's resources
    exit_action: str = "exit"  # what happens at exit_due: exit (run-seconds) or oom
    run_started: float = 0.0  # loop time the containers last started
    pull_failures: int = 0
    suspended: bool = False  # its node is NotReady: nothing happens until it is Ready again
    gpu_uuids: tuple[str, ...] = ()  # its devices: the device plugin's, or those it shares
    shares_gpus: bool = False  # a GPU fraction: uses devices it does not hold
    reservation: bool = False  # a reservation pod: reports the UUID of its device
    reported_memory: str | None = None  # a fraction's GPU memory in use, as last written
    gpu_cap: int | None = None  # the node-level scheduler's memory limit for its GPU process
    gpu_started: float = 0.0  # loop time its GPU process last started
    gpu_restarts: int = 0  # times the node-level scheduler restarted its GPU process
    swap_wanted: bool = False  # lifecycle says: its GPU memory goes to host memory
    swapped_mib: int = 0  # its GPU memory in host memory now
    swap_due: float | None = None  # loop time its memory's move (out or in) completes
    activity_due: float | None = None  # loop time its activity next changes
    config_maps: tuple[tuple[str, str], ...] = ()  # (volume, ConfigMap) it mounts
    mount_warned: float | None = None  # when its last FailedMount event was recorded
    awaiting_mount: bool = False  # a ConfigMap it mounts is missing

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(slots=True)
class NodeState:
    name: str
    index: int
    ip: str
    allocatable: dict[str, float]
    pods: set[PodSim] = field(default_factory=set)
    ready: bool = True
    next_slot: int = 2
    used_slots: set[int] = field(default_factory=set)
    gpu_uuids: list[str] = field(default_factory=list)  # by device index
    device_owner: dict[int, str] = field(default_factory=dict)  # index -> pod uid

    def allocate_devices(self, uid: str, count: int, preferred: tuple[str, ...] = ()
                         ) -> tuple[str, ...] | None:
        """`count` free devices for a pod (those it held before a restart first, then the
        lowest indices), or None when fewer are free."""
        free = [i for i in range(len(self.gpu_uuids)) if i not in self.device_owner]
        wanted = [i for i in free if self.gpu_uuids[i] in preferred]
        wanted += [i for i in free if i not in wanted]
        if len(wanted) < count:
            return None
        for i in wanted[:count]:
            self.device_owner[i] = uid
        return tuple(self.gpu_uuids[i] for i in sorted(wanted[:count]))

    def free_devices(self, uid: str) -> None:
        for i in [i for i, owner in self.device_owner.items() if owner == uid]:
            del self.device_owner[i]

    def allocate_ip(self) -> tuple[str, int]:
        for _ in range(253):
            slot = self.next_slot
            self.next_slot = 2 if slot >= 254 else slot + 1
            if slot not in self.used_slots:
                self.used_slots.add(slot)
                return _pod_ip(self.index, slot), slot
        slot = self.next_slot  # more pods than addresses: share (never happens at 110 pods)
        return _pod_ip(self.index, slot), slot


def _pod_ip(index: int, slot: int) -> str:
    return f"10.{64 + (index >> 8)}.{index & 255}.{slot}"


def _image_id(image: str) -> str:
    name = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] \
        else image.split("@", 1)[0]
    return f"{name}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


class Kubelet:
    """All simulated kubelets: one heap of due transitions, one timer."""

    def __init__(self, store: Store, timings: Timings, seed: int | None = None,
                 events: EventLog | None = None) -> None:
        self.events = events
        self.store = store
        self.pods_resource: Resource = store["pods"]
        self.nodes_resource: Resource = store["nodes"]
        self.config_maps: Resource | None = store.resources.get("configmaps")
        self.timings = timings
        self.rng = random.Random(seed)
        self.sims: dict[str, PodSim] = {}
        self.nodes: dict[str, NodeState] = {}
        self._heap: list[tuple[float, int, int, PodSim, str]] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = float("inf")
        self.transitions = 0
        path = os.environ.get(STATUS_LOG_ENV)
        self._status_log = open(path, "a", buffering=1) if path else None
        store.listen(self._on_event)

    # lifecycle -----------------------------------------------------------------------------

    def add_node(self, node: Mapping[str, Any], index: int) -> None:
        status = node.get("status", {})
        allocatable = {res: float(parse_quantity(qty))
                       for res, qty in (status.get("allocatable") or {}).items()}
        ip = next((a["address"] for a in status.get("addresses") or ()
                   if a.get("type") == "InternalIP"), "")
        name = node["metadata"]["name"]
        uuids = ((node["metadata"].get("annotations") or {}).get(SHARED_UUIDS_ANNOTATION) or "")
        self.nodes[name] = NodeState(name=name, index=index, ip=ip, allocatable=allocatable,
                                     ready=node_is_ready(node),
                                     gpu_uuids=[u for u in uuids.split(",") if u])

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._loop = None
        if self._status_log is not None:
            self._status_log.close()
            self._status_log = None

    # store listener ------------------------------------------------------------------------

    def _on_event(self, resource: Resource, event: Event) -> None:
        if resource is self.nodes_resource and event.type == DELETED:
            self.nodes.pop(event.stored.obj["metadata"]["name"], None)
            return
        if resource is self.config_maps and event.type == ADDED:
            self._config_map_created(event.stored.obj["metadata"])
            return
        if resource is not self.pods_resource:
            return
        obj = event.stored.obj
        meta = obj["metadata"]
        uid = meta.get("uid", "")
        if event.type == DELETED:
            self._deleted(uid)
            return
        if event.type not in (ADDED, MODIFIED):
            return
        sim = self.sims.get(uid)
        if sim is None:
            node = obj.get("spec", {}).get("nodeName")
            if not node or obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return
            state = self.nodes.get(node)
            if state is None:
                return  # no kubelet for this node: the pod stays Pending
            if not state.ready:
                return  # the node's kubelet is down
            sim = self._new_sim(obj, node)
            self.sims[uid] = sim
            self._schedule(sim, 0.0, "admit")
        elif sim.shares_gpus:
            self._gpu_process(sim, meta.get("annotations") or {})
            self._gpu_swap(sim, meta.get("annotations") or {})
        if meta.get("deletionTimestamp"):
            grace = int(meta.get("deletionGracePeriodSeconds") or 0)
            if not sim.deleting or (sim.delete_grace is not None and grace < sim.delete_grace):
                sim.deleting = True
                sim.delete_grace = grace
                if sim.stage != NEW and not sim.suspended:  # a pending admission sees it
                    self._schedule(sim, 0.0, "stop")

    def _deleted(self, uid: str) -> None:
        sim = self.sims.pop(uid, None)
        if sim is not None:
            self._release(sim)
            sim.token += 1
            if sim.shares_gpus and sim.reported_memory:
                sim.reported_memory = None
                self._report_devices_of(sim)

    def adopt(self, stored: Stored) -> None:
        """A pod restored from a snapshot: simulated from admission again when it is bound
        and not finished (what a node's kubelet does for its pods after a reboot)."""
        self._on_event(self.pods_resource, Event(ADDED, 0, stored, None))

    def _new_sim(self, pod: Mapping[str, Any], node: str) -> PodSim:
        meta, spec = pod["metadata"], pod.get("spec", {})
        containers = [ContainerSim(name=c["name"], image=c.get("image", ""))
                      for c in spec.get("containers") or ()]
        requests = pod_requests(pod)
        annotations = meta.get("annotations") or {}
        shared = annotations.get(SHARED_UUIDS_ANNOTATION) or ""
        shares = not requests.get(GPU_RESOURCE) and bool(shared)
        sim = PodSim(namespace=meta.get("namespace", ""), name=meta["name"], uid=meta["uid"],
                      node=node, restart_policy=spec.get("restartPolicy", "Always"),
                      containers=containers, behaviour=self._behaviour(meta),
                      requests=requests, shares_gpus=shares,
                      gpu_uuids=tuple(u for u in shared.split(",") if u) if shares else (),
                      reservation=(meta.get("labels") or {}).get(RESERVATION_LABEL) == "true",
                      config_maps=config_maps_needed(pod))
        if shares:  # its GPU process starts where the node-level scheduler put it
            sim.gpu_uuids, sim.gpu_cap = self._current_gpus(sim, annotations)
            sim.swap_wanted = (_mib(annotations.get(SWAP_ANNOTATION)) or 0) > 0
            sim.gpu_restarts = _mib(annotations.get(GPU_RESTARTS_ANNOTATION)) or 0  # restored
        return sim

    def _current_gpus(self, sim: PodSim, annotations: Mapping[str, Any]
                      ) -> tuple[tuple[str, ...], int | None]:
        """The devices and memory limit the node-level scheduler gives a fraction's GPU
        process: its own devices and no limit of its own when it says nothing."""
        shared = tuple(u for u in (annotations.get(SHARED_UUIDS_ANNOTATION) or "").split(",")
                       if u)
        node = self.nodes.get(sim.node)
        uuids = shared
        current = annotations.get(CURRENT_DEVICES_ANNOTATION) or ""
        if current and node is not None:
            try:
                indices = [int(i) for i in current.split(",") if i]
                if indices and all(0 <= i < len(node.gpu_uuids) for i in indices):
                    uuids = tuple(node.gpu_uuids[i] for i in indices)
            except ValueError:
                pass
        return uuids, _mib(annotations.get(CURRENT_LIMIT_ANNOTATION))

    def _gpu_process(self, sim: PodSim, annotations: Mapping[str, Any]) -> None:
        """The node-level scheduler moved a fraction or changed its memory limit: a running
        GPU process restarts on its device under its limit (its memory steps start again);
        one not yet started just starts there."""
        uuids, cap = self._current_gpus(sim, annotations)
        limit = sim.behaviour.gpu_memory_limit  # no limit of its own: the pod's
        if uuids == sim.gpu_uuids and (cap or limit) == (sim.gpu_cap or limit):
            sim.gpu_cap = cap
            return
        before, was = sim.gpu_uuids, sim.gpu_cap
        if sim.stage not in (STARTING, READY) or sim.suspended:
            sim.gpu_uuids, sim.gpu_cap = uuids, cap
            return
        self._report_devices_of(sim)  # the devices it leaves
        sim.gpu_uuids, sim.gpu_cap = uuids, cap
        sim.gpu_started = self._now()
        sim.gpu_restarts += 1
        sim.reported_memory = None
        for t, _ in sim.behaviour.gpu_memory:
            if t > 0:
                self._push(sim, t, "gpu_memory")
        words = "device" if len(uuids) == 1 else "devices"
        limit = f", GPU memory limit {cap} MiB" if cap is not None else ""
        old = f" (was {','.join(before)}" + (f", {was} MiB" if was is not None else "") + ")"
        self._event(sim, "Normal", GPU_RESTARTED_REASON,
                    f"GPU process restarted on {words} {','.join(uuids)}{limit}{old}",
                    sim.containers[0].name if sim.containers else None)
        self._push(sim, 0.0, "gpu_memory")  # written after the change that caused it

    # GPU memory swap -------------------------------------------------------------------------

    def gpu_active(self, sim: PodSim) -> bool:
        """Whether the fraction's GPU process wants the GPU now (its activity profile)."""
        return active_at(sim.behaviour.gpu_active, self._now() - sim.gpu_started)[0]

    def _gpu_swap(self, sim: PodSim, annotations: Mapping[str, Any]) -> None:
        """Lifecycle swapped the fraction's memory out or in: the memory moves at the
        profile's gpuSwapMiBPerSecond. Its activity profile may be changed on the running pod
        too (`kubectl annotate`)."""
        try:
            activity = gpu_activity(annotations.get(SIM_PREFIX + "gpu-active"))
        except ValueError:
            activity = sim.behaviour.gpu_active
        if activity != sim.behaviour.gpu_active:
            sim.behaviour.gpu_active = activity
            if sim.stage in (STARTING, READY) and not sim.suspended:
                self._next_activity(sim)
                self._push(sim, 0.0, "gpu_memory")
        wanted = (_mib(annotations.get(SWAP_ANNOTATION)) or 0) > 0
        if wanted == sim.swap_wanted:
            return
        sim.swap_wanted = wanted
        if sim.stage not in (STARTING, READY) or sim.suspended:
            return
        self._swap_now(sim)

    def _swap_now(self, sim: PodSim) -> None:
        """Start moving the memory the way lifecycle says (or give up a move it reversed)."""
        if sim.swap_wanted == bool(sim.swapped_mib):
            sim.swap_due = None  # where it should be already: a move under way is dropped
            return
        if sim.swap_due is not None:
            return
        moving = sim.swapped_mib or self._gpu_memory_now(sim)
        delay = moving / max(1.0, self.timings.gpu_swap_mib_per_second)
        sim.swap_due = self._now() + delay
        self._push(sim, delay, "gpu_swap_done")
        self._push(sim, 0.0, "gpu_memory")  # it gets no GPU while its memory moves

    def _gpu_memory_now(self, sim: PodSim) -> int:
        used = sim.behaviour.gpu_memory_at(self._now() - sim.gpu_started) or 0
        return min(used, sim.gpu_cap) if sim.gpu_cap is not None else used

    def _do_gpu_swap_done(self, sim: PodSim) -> None:
        """A move completed, and with it every move on the node due about now: a swap-out and
        the swap-in it makes room for are one exchange through the device's reserved memory,
        so neither the device nor the host ever holds both."""
        due, now = sim.swap_due, self._now()
        if due is None or due > now + 0.01:
            return
        state = self.nodes.get(sim.node)
        paired = [p for p in (state.pods if state else ()) if p.swap_due is not None
                  and p.swap_due <= now + PAIRED_SWAP_SECONDS]
        for other in sorted({sim, *paired}, key=lambda p: p.swap_due or 0):
            self._swap_done(other)
        self._report_node_swap(sim.node)

    def _swap_done(self, sim: PodSim) -> None:
        container = sim.containers[0].name if sim.containers else None
        sim.swap_due = None
        if sim.swap_wanted:
            sim.swapped_mib = self._gpu_memory_now(sim)
            self._event(sim, "Normal", SWAPPED_OUT_REASON,
                        f"{sim.swapped_mib} MiB of GPU memory swapped out to the host memory "
                        f"of node {sim.node}", container)
        else:
            moved, sim.swapped_mib = sim.swapped_mib, 0
            self._event(sim, "Normal", SWAPPED_IN_REASON,
                        f"{moved} MiB of GPU memory swapped back in from the host memory of "
                        f"node {sim.node}", container)
        if sim.stage in (STARTING, READY) and not sim.suspended:
            self._write(sim)

    def _next_activity(self, sim: PodSim) -> None:
        """Report the fraction again when its activity profile changes phase."""
        _, left = active_at(sim.behaviour.gpu_active, self._now() - sim.gpu_started)
        sim.activity_due = None if left is None else self._now() + left
        if left is not None:
            self._push(sim, left, "gpu_activity")

    def _do_gpu_activity(self, sim: PodSim) -> None:
        due = sim.activity_due
        if due is None or abs(due - self._now()) > 0.05 or sim.stage not in (STARTING, READY) \
                or sim.suspended:
            return  # superseded (its GPU process restarted), or not running
        self._write(sim)
        self._next_activity(sim)

    def _report_node_swap(self, name: str) -> None:
        """The host memory the node's swapped-out GPU memory takes, on the node."""
        state = self.nodes.get(name)
        if state is None or self.nodes_resource.get("", name) is None:
            return
        total = str(sum(p.swapped_mib for p in state.pods))

        def change(obj: dict[str, Any]) -> None:
            obj["metadata"].setdefault("annotations", {})[NODE_SWAP_USED_ANNOTATION] = total

        if (self.nodes_resource.get("", name).obj["metadata"].get("annotations") or {}).get(
                NODE_SWAP_USED_ANNOTATION) != total:
            self.nodes_resource.mutate("", name, change)

    def _behaviour(self, meta: Mapping[str, Any]) -> Behaviour:
        ann = meta.get("annotations") or {}

        def seconds(key: str, default: float | None) -> float | None:
            value = ann.get(SIM_PREFIX + key)
            if value is None:
                return self._jitter(default) if default is not None else None
            try:
                return max(0.0, float(value))
            except ValueError:
                return default

        try:
            exit_code = int(ann.get(SIM_PREFIX + "exit-code", 0))
        except ValueError:
            exit_code = 0
        try:
            utilization = float(ann.get(SIM_PREFIX + "gpu-utilization",
                                        DEFAULT_GPU_UTILIZATION))
        except ValueError:
            utilization = DEFAULT_GPU_UTILIZATION
        request = _mib(ann.get(MEMORY_REQUEST_ANNOTATION))
        try:
            steps = gpu_memory_steps(ann.get(SIM_PREFIX + "gpu-memory-used"))
        except ValueError:
            steps = ()
        if not steps and request is not None:
            steps = ((0.0, request),)
        try:
            activity = gpu_activity(ann.get(SIM_PREFIX + "gpu-active"))
        except ValueError:
            activity = ()
        return Behaviour(pull_seconds=seconds("pull-seconds", self.timings.pull_seconds) or 0.0,
                         start_seconds=seconds("start-seconds", self.timings.start_seconds)
                         or 0.0,
                         run_seconds=seconds("run-seconds", None), exit_code=exit_code,
                         image_pull_fails=ann.get(SIM_PREFIX + "image-pull") == "fail",
                         crash_loop=ann.get(SIM_PREFIX + "crash") == "loop",
                         oom_after=seconds("oom-after-seconds", None),
                         gpu_utilization=min(100.0, max(0.0, utilization)),
                         gpu_memory=steps,
                         gpu_memory_limit=_mib(ann.get(MEMORY_LIMIT_ANNOTATION)),
                         gpu_active=activity)

    def _backoff(self, failures: int) -> float:
        t = self.timings
        return min(t.backoff_seconds * 2 ** min(failures, 30), t.backoff_max_seconds)

    def _reject(self, sim: PodSim, reason: str, message: str, when: str) -> None:
        """Admission refused: the pod fails, with a Warning event, as a kubelet rejects it."""
        sim.stage = REJECTED
        self._event(sim, "Warning", reason, message)
        self._write(sim, phase="Failed", extra={"reason": reason, "message": message,
                                                "startTime": when})

    def _event(self, sim: PodSim, type_: str, reason: str, message: str,
               container: str | None = None) -> None:
        if self.events is None or self.events.max_events == 0:
            return
        involved = {"kind": "Pod", "apiVersion": "v1",
                    "metadata": {"name": sim.name, "namespace": sim.namespace, "uid": sim.uid}}
        self.events.record(involved, type_, reason, message, host=sim.node,
                           field_path=f"spec.containers{{{container}}}" if container else None)

    def _jitter(self, base: float) -> float:
        j = self.timings.jitter
        return base * self.rng.uniform(1 - j, 1 + j) if j else base

    # timer ---------------------------------------------------------------------------------

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _schedule(self, sim: PodSim, delay: float, action: str) -> None:
        sim.token += 1
        due = self._now() + max(0.0, delay)
        heapq.heappush(self._heap, (due, next(self._seq), sim.token, sim, action))
        if due < self._timer_due:
            self._arm()

    def _arm(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._heap:
            self._timer_due = float("inf")
            return
        due = self._heap[0][0]
        self._timer_due = due
        self._timer = loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_due = float("inf")
        now = self._now()
        handled = 0
        heap = self._heap
        while heap and heap[0][0] <= now + 0.001 and handled < _BATCH:
            _, _, token, sim, action = heapq.heappop(heap)
            if (token != sim.token and token != _ALWAYS) or self.sims.get(sim.uid) is not sim:
                continue  # superseded or forgotten
            handled += 1
            try:
                self._step(sim, action)
            except Exception:  # a bug in one pod must not stop every kubelet
                log.exception("kubelet: %s of pod %s/%s failed", action, sim.namespace,
                              sim.name)
        self.transitions += handled
        if heap and heap[0][0] <= now + 0.001 and self._loop is not None:
            self._timer_due = now
            self._timer = self._loop.call_soon(self._fire)  # type: ignore[assignment]
        else:
            self._arm()

    # transitions ---------------------------------------------------------------------------

    def _step(self, sim: PodSim, action: str) -> None:
        getattr(self, "_do_" + action.replace("-", "_"))(sim)

    def _do_admit(self, sim: PodSim) -> None:
        node = self.nodes.get(sim.node)
        if node is None:
            self._forget(sim)
            return
        when = now_rfc3339()
        refusal = self._admission(sim, node)
        if refusal is not None:
            self._reject(sim, *refusal, when)
            return
        gpus = int(sim.requests.get(GPU_RESOURCE, 0))
        if gpus:
            devices = node.allocate_devices(sim.uid, gpus, self._held_devices(sim))
            if devices is None:
                self._reject(sim, "UnexpectedAdmissionError",
                             "Allocate failed due to requested number of devices "
                             f"unavailable for {GPU_RESOURCE}. Requested: {gpus}, "
                             f"Available: {len(node.gpu_uuids) - len(node.device_owner)}, "
                             "which is unexpected", when)
                return
            sim.gpu_uuids = devices
        sim.active = True
        node.pods.add(sim)
        sim.ip, sim.ip_slot = node.allocate_ip()
        sim.start_time = when
        for c in sim.containers:
            c.state, c.reason = "waiting", "ContainerCreating"
        self._cond(sim, "PodReadyToStartContainers", True, when)
        self._cond(sim, "Initialized", True, when)
        self._not_ready(sim, when)
        sim.stage = CREATING
        sim.awaiting_mount = bool(self._missing_config_maps(sim))
        self._write(sim)
        if sim.deleting:
            self._schedule(sim, 0.0, "stop")
        else:
            self._do_mount(sim)

    def _do_mount(self, sim: PodSim) -> None:
        """Mount the pod's ConfigMap volumes, then pull; a missing ConfigMap keeps the pod in
        ContainerCreating with a FailedMount event, as the kubelet's volume manager does."""
        missing = self._missing_config_maps(sim)
        if not missing:
            if sim.awaiting_mount:  # mounted at last: the sandbox starts, with the pod's IP
                sim.awaiting_mount = False
                self._write(sim)
            self._pull(sim)
            return
        sim.awaiting_mount = True
        now = self._now()
        if sim.mount_warned is None or now - sim.mount_warned >= MOUNT_EVENT_SECONDS:
            sim.mount_warned = now
            for volume, name in missing:
                self._event(sim, "Warning", "FailedMount", f'MountVolume.SetUp failed for '
                            f'volume "{volume}" : configmap "{name}" not found')
        self._schedule(sim, MOUNT_RETRY_SECONDS, "mount")

    def _missing_config_maps(self, sim: PodSim) -> list[tuple[str, str]]:
        return [(volume, name) for volume, name in sim.config_maps
                if self.config_maps is None or self.config_maps.get(sim.namespace, name) is None]

    def _config_map_created(self, meta: Mapping[str, Any]) -> None:
        """Pods waiting for this ConfigMap mount it now rather than at their next retry."""
        namespace, name = meta.get("namespace"), meta["name"]
        for sim in list(self.sims.values()):
            if sim.awaiting_mount and sim.namespace == namespace and any(
                    cm == name for _, cm in sim.config_maps) and not sim.deleting:
                self._schedule(sim, 0.0, "mount")

    def _pull(self, sim: PodSim) -> None:
        for c in sim.containers:
            self._event(sim, "Normal", "Pulling", f'Pulling image "{c.image}"', c.name)
        self._schedule(sim, sim.behaviour.pull_seconds, "pulled")

    def _admission(self, sim: PodSim, node: NodeState) -> tuple[str, str] | None:
        used: dict[str, float] = {"pods": float(len(node.pods))}
        for other in node.pods:
            for res, value in other.requests.items():
                used[res] = used.get(res, 0.0) + value
        wanted = dict(sim.requests)
        wanted["pods"] = 1.0
        for res, value in wanted.items():
            if value <= 0:
                continue
            capacity = node.allocatable.get(res)
            if capacity is None:
                if "/" not in res:
                    continue  # a native resource this node does not report
                capacity = 0.0  # an extended resource (nvidia.com/gpu) the node lacks
            if used.get(res, 0.0) + value > capacity + 1e-9:
                if res == "pods":
                    return "OutOfpods", "Node didn't have enough resource: pods"
                return (f"OutOf{res}",
                        f"Pod was rejected: Node didn't have enough resource: {res}, requested:"
                        f" {_fmt(value)}, used: {_fmt(used.get(res, 0.0))}, capacity: "
                        f"{_fmt(capacity)}")
        return None

    def _held_devices(self, sim: PodSim) -> tuple[str, ...]:
        """The devices a pod reported before a restart of kubesim: it keeps them."""
        stored = self.pods_resource.get(sim.namespace, sim.name)
        ann = (stored.obj["metadata"].get("annotations") or {}) if stored else {}
        return tuple(u for u in (ann.get(DEVICES_ANNOTATION) or "").split(",") if u)

    def _do_pulled(self, sim: PodSim) -> None:
        when = now_rfc3339()
        if sim.behaviour.image_pull_fails:
            for c in sim.containers:
                c.state, c.reason = "waiting", "ErrImagePull"
                c.message = (f'failed to pull and unpack image "{c.image}": failed to resolve '
                             "reference: simulated pull failure (sim.fairway.io/image-pull)")
                self._event(sim, "Warning", "Failed", f'Failed to pull image "{c.image}": '
                            f"{c.message}", c.name)
                self._event(sim, "Warning", "Failed", "Error: ErrImagePull", c.name)
            self._write(sim)
            self._schedule(sim, min(1.0, self.timings.backoff_seconds), "pull_backoff")
            return
        for c in sim.containers:
            self._event(sim, "Normal", "Pulled", f'Successfully pulled image "{c.image}"',
                        c.name)
            c.start(when)
            self._event(sim, "Normal", "Created", f"Created container: {c.name}", c.name)
            self._event(sim, "Normal", "Started", f"Started container {c.name}", c.name)
        self._started(sim, when)

    def _do_pull_backoff(self, sim: PodSim) -> None:
        """ErrImagePull turns into ImagePullBackOff; the next pull comes after a back-off."""
        delay = self._backoff(sim.pull_failures)
        sim.pull_failures += 1
        for c in sim.containers:
            c.state, c.reason = "waiting", "ImagePullBackOff"
            c.message = f'Back-off pulling image "{c.image}"'
            self._event(sim, "Normal", "BackOff", c.message, c.name)
            self._event(sim, "Warning", "Failed", "Error: ImagePullBackOff", c.name)
        self._write(sim)
        self._schedule(sim, delay, "repull")

    def _do_repull(self, sim: PodSim) -> None:
        self._pull(sim)

    def _started(self, sim: PodSim, when: str) -> None:
        """Containers just started: crash, run out of memory, or become ready."""
        sim.stage = STARTING
        sim.run_started = sim.gpu_started = self._now()
        sim.exit_due = None
        self._not_ready(sim, when)
        self._write(sim)
        b = sim.behaviour
        gpu_oom = b.gpu_oom_after() if sim.shares_gpus else None
        if sim.shares_gpus:
            for t, _ in b.gpu_memory:  # each step is reported when it comes
                if t > 0 and (gpu_oom is None or t < gpu_oom):
                    self._push(sim, t, "gpu_memory")
            self._next_activity(sim)
            if sim.swap_wanted != bool(sim.swapped_mib):
                self._swap_now(sim)
        if b.crash_loop:
            sim.exit_action, sim.exit_due = "crash", self._now() + CRASH_AFTER_SECONDS
            self._schedule(sim, CRASH_AFTER_SECONDS, "crash")
        elif gpu_oom is not None and gpu_oom <= b.start_seconds and (
                b.oom_after is None or gpu_oom < b.oom_after):
            sim.exit_action, sim.exit_due = "gpu_oom", self._now() + gpu_oom
            self._schedule(sim, gpu_oom, "gpu_oom")
        elif b.oom_after is not None and b.oom_after <= b.start_seconds:
            sim.exit_action, sim.exit_due = "oom", self._now() + b.oom_after
            self._schedule(sim, b.oom_after, "oom")
        else:
            self._schedule(sim, b.start_seconds, "ready")

    def _push(self, sim: PodSim, delay: float, action: str) -> None:
        """A transition that later ones do not cancel (it checks what it finds)."""
        due = self._now() + max(0.0, delay)
        heapq.heappush(self._heap, (due, next(self._seq), _ALWAYS, sim, action))
        if due < self._timer_due:
            self._arm()

    def _do_gpu_memory(self, sim: PodSim) -> None:
        """A step of the GPU memory a fraction uses: reported while it runs."""
        if sim.stage in (STARTING, READY) and not sim.suspended:
            self._write(sim)

    def _do_ready(self, sim: PodSim) -> None:
        when = now_rfc3339()
        for c in sim.containers:
            if c.state == "running":
                c.ready = True
        sim.stage = READY
        self._cond(sim, "ContainersReady", True, when)
        self._cond(sim, "Ready", True, when)
        self._write(sim)
        now = self._now()
        choices = []
        if sim.behaviour.run_seconds is not None:
            choices.append((now + sim.behaviour.run_seconds, "exit"))
        if sim.behaviour.oom_after is not None:
            choices.append((max(now, sim.run_started + sim.behaviour.oom_after), "oom"))
        gpu_oom = sim.behaviour.gpu_oom_after() if sim.shares_gpus else None
        if gpu_oom is not None:
            choices.append((max(now, sim.run_started + gpu_oom), "gpu_oom"))
        if choices:
            sim.exit_due, sim.exit_action = min(choices)
            self._schedule(sim, sim.exit_due - now, sim.exit_action)
        else:
            sim.exit_due = None

    def _do_exit(self, sim: PodSim) -> None:
        """The main (first) container exits with the pod's exit code; the others with 0."""
        when = now_rfc3339()
        for i, c in enumerate(sim.containers):
            c.terminate(when, sim.behaviour.exit_code if i == 0 else 0)
        self._after_exit(sim, when)

    def _do_crash(self, sim: PodSim) -> None:
        """`crash: loop`: the main container exits with 1 right after it started."""
        when = now_rfc3339()
        sim.containers[0].terminate(when, 1, "Error")
        self._after_exit(sim, when)

    def _do_oom(self, sim: PodSim) -> None:
        """`oom-after-seconds`: the main container is OOM-killed (exit 137)."""
        when = now_rfc3339()
        main = sim.containers[0]
        main.terminate(when, 137, "OOMKilled")
        self._event(sim, "Warning", "OOMKilling", f"Memory cgroup out of memory: Killed "
                    f"process of container {main.name} (simulated)", main.name)
        self._after_exit(sim, when)

    def _do_gpu_oom(self, sim: PodSim) -> None:
        """A GPU fraction used more GPU memory than its limit: the CUDA interposer refuses the
        allocation and the program fails (exit 1), as a CUDA out-of-memory error ends it."""
        when = now_rfc3339()
        main = sim.containers[0]
        used = sim.behaviour.gpu_memory_at(self._now() - sim.run_started)
        message = (f"CUDA out of memory: used {used} MiB of its "
                   f"{sim.behaviour.gpu_memory_limit} MiB GPU memory limit")
        main.terminate(when, 1, GPU_OOM_REASON, message)
        self._event(sim, "Warning", GPU_OOM_REASON, f"{message} (container {main.name}, "
                    f"simulated)", main.name)
        self._after_exit(sim, when)

    def _after_exit(self, sim: PodSim, when: str) -> None:
        failed = any(c.exit_code != 0 for c in sim.containers)
        restart = sim.restart_policy == "Always" or (sim.restart_policy == "OnFailure"
                                                     and failed)
        if restart and not sim.deleting:
            sim.stage = BACKOFF
            self._not_ready(sim, when)
            self._write(sim)
            self._schedule(sim, 0.0, "crashloop")
            return
        self._terminal(sim, when)

    def _do_crashloop(self, sim: PodSim) -> None:
        """Exited containers wait in CrashLoopBackOff, then restart."""
        delay = self._backoff(sim.containers[0].restart_count)
        for c in sim.containers:
            if c.state == "terminated":
                c.last_state = {"terminated": c.status()["state"]["terminated"]}
                c.state, c.reason = "waiting", "CrashLoopBackOff"
                c.message = (f"back-off {go_duration(delay)} restarting failed container={c.name} "
                             f"pod={sim.name}_{sim.namespace}({sim.uid})")
                c.container_id = None
                self._event(sim, "Warning", "BackOff", "Back-off restarting failed container "
                            f"{c.name} in pod {sim.name}_{sim.namespace}({sim.uid})", c.name)
        self._write(sim)
        self._schedule(sim, delay, "restart")

    def _do_restart(self, sim: PodSim) -> None:
        when = now_rfc3339()
        for c in sim.containers:
            if c.state == "waiting":
                c.restart_count += 1
                c.start(when)
                self._event(sim, "Normal", "Started", f"Started container {c.name}", c.name)
        self._started(sim, when)

    def _terminal(self, sim: PodSim, when: str) -> None:
        sim.stage = TERMINAL
        self._release(sim)
        phase = "Succeeded" if all(c.exit_code == 0 for c in sim.containers) else "Failed"
        reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        self._cond(sim, "PodReadyToStartContainers", False, when)
        self._cond(sim, "ContainersReady", False, when, reason)
        self._cond(sim, "Ready", False, when, reason)
        self._write(sim, phase=phase)
        if sim.deleting:
            self._schedule(sim, 0.0, "finalize")

    def _do_stop(self, sim: PodSim) -> None:
        """The pod is being deleted: let running containers use up the grace period."""
        if sim.stage in (TERMINAL, REJECTED, NEW, CREATING, BACKOFF):
            self._schedule(sim, 0.0, "finalize" if sim.stage != BACKOFF else "kill")
            return
        now = self._now()
        due = now + float(sim.delete_grace or 0)
        if sim.kill_due is not None:
            due = min(due, sim.kill_due)
        sim.kill_due = due
        if sim.stage in (READY, STARTING) and sim.exit_due is not None and sim.exit_due < due:
            self._schedule(sim, sim.exit_due - now, sim.exit_action)  # it ends by itself first
        else:
            for c in sim.containers:
                if c.state == "running":
                    self._event(sim, "Normal", "Killing", f"Stopping container {c.name}",
                                c.name)
            self._schedule(sim, due - now, "kill")

    def _do_kill(self, sim: PodSim) -> None:
        when = now_rfc3339()
        for c in sim.containers:
            if c.state == "running":
                c.terminate(when, 137, "Error")
            elif c.state == "waiting" and c.last_state.get("terminated"):
                term = c.last_state["terminated"]
                c.state, c.exit_code = "terminated", term.get("exitCode", 137)
                c.reason, c.started_at = term.get("reason"), term.get("startedAt")
                c.finished_at = term.get("finishedAt")
        self._terminal(sim, when)

    def _do_finalize(self, sim: PodSim) -> None:
        """The kubelet's final delete (grace 0) once nothing runs."""
        stored = self.pods_resource.get(sim.namespace, sim.name)
        if stored is None or stored.obj["metadata"].get("uid") != sim.uid:
            self._forget(sim)
            return
        self.pods_resource.delete(sim.namespace, sim.name)  # the listener forgets the sim

    # status --------------------------------------------------------------------------------

    def _cond(self, sim: PodSim, type_: str, status: bool, when: str,
              reason: str | None = None, message: str | None = None) -> None:
        value = "True" if status else "False"
        cur = sim.conditions.get(type_)
        cond: dict[str, Any] = {"type": type_, "status": value, "lastProbeTime": None,
                                "lastTransitionTime": when}
        if cur is not None and cur["status"] == value:
            cond["lastTransitionTime"] = cur["lastTransitionTime"]
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        sim.conditions[type_] = cond

    def _not_ready(self, sim: PodSim, when: str) -> None:
        unready = [c.name for c in sim.containers if not c.ready]
        message = f"containers with unready status: [{' '.join(unready)}]"
        self._cond(sim, "ContainersReady", False, when, "ContainersNotReady", message)
        self._cond(sim, "Ready", False, when, "ContainersNotReady", message)

    def _phase(self, sim: PodSim) -> str:
        waiting = running = stopped = succeeded = 0
        for c in sim.containers:
            if c.state == "running":
                running += 1
            elif c.state == "terminated":
                stopped += 1
                succeeded += c.exit_code == 0
            elif c.last_state.get("terminated"):
                stopped += 1
                succeeded += c.last_state["terminated"].get("exitCode") == 0
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if sim.restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if sim.restart_policy == "Never" else "Running"

    def _write(self, sim: PodSim, phase: str | None = None,
               extra: dict[str, Any] | None = None) -> None:
        stored = self.pods_resource.get(sim.namespace, sim.name)
        if stored is None or stored.obj["metadata"].get("uid") != sim.uid:
            self._forget(sim)
            return
        pod = self.store.copy(stored)
        old = pod.get("status") or {}
        status: dict[str, Any] = {"phase": phase or self._phase(sim)}
        conditions = [sim.conditions[t] for t in KUBELET_CONDITIONS if t in sim.conditions]
        others = [c for c in old.get("conditions") or () if c.get("type")
                  not in KUBELET_CONDITIONS]
        if not any(c.get("type") == "PodScheduled" for c in others):
            others.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": sim.start_time or now_rfc3339()})
        status["conditions"] = conditions + others
        if extra:
            status.update(extra)
        node = self.nodes.get(sim.node)
        if node is None:
            self._forget(sim)
            return
        status["hostIP"] = node.ip
        status["hostIPs"] = [{"ip": node.ip}]
        if sim.ip and not sim.awaiting_mount:  # no sandbox (and no IP) before volumes mount
            status["podIP"] = sim.ip
            status["podIPs"] = [{"ip": sim.ip}]
        if sim.start_time:
            status["startTime"] = sim.start_time
        if sim.stage != REJECTED:
            status["containerStatuses"] = [c.status() for c in sim.containers]
        if sim.suspended:  # the node stopped reporting: what the node controller writes
            status["phase"] = "Unknown"
            for cond in status["conditions"]:
                if cond["type"] in ("Ready", "ContainersReady") and cond["status"] == "True":
                    cond.update(status="False", reason="NodeNotReady",
                                message=f"node {sim.node} is not ready",
                                lastTransitionTime=now_rfc3339())
        _report_gpu_utilization(pod, sim, status["phase"], self._utilization(sim))
        self._report_gpu_devices(pod, sim, status["phase"])
        status["qosClass"] = old.get("qosClass", "BestEffort")
        for key in ("nominatedNodeName",):
            if key in old:
                status[key] = old[key]
        pod["status"] = status
        self.pods_resource.update(pod)
        if self._status_log is not None:
            ready = any(c["type"] == "Ready" and c["status"] == "True"
                        for c in status["conditions"])
            self._status_log.write(f"{time.monotonic():.6f} {sim.namespace}/{sim.name} "
                                   f"{status['phase']} {ready}\n")

    def _report_gpu_devices(self, pod: dict[str, Any], sim: PodSim, phase: str) -> None:
        """The devices the device plugin gave the pod; a reservation pod's UUID, as its
        program writes it once it runs; a running fraction's GPU memory in use."""
        annotations = pod["metadata"].setdefault("annotations", {})
        running = phase == "Running" and any(c.state == "running" for c in sim.containers)
        if sim.gpu_uuids and not sim.shares_gpus:
            annotations[DEVICES_ANNOTATION] = ",".join(sim.gpu_uuids)
            if sim.reservation and running:
                annotations.setdefault(RESERVED_UUID_ANNOTATION, sim.gpu_uuids[0])
                # the device's memory in use: what the fractions sharing it use
                annotations[MEMORY_USED_ANNOTATION] = str(self._device_memory(
                    sim.node, sim.gpu_uuids[0]))
                swapped = self._device_swapped(sim.node, sim.gpu_uuids[0])
                if swapped:  # what its fractions have swapped out to host memory
                    annotations[SWAPPED_ANNOTATION] = str(swapped)
                else:
                    annotations.pop(SWAPPED_ANNOTATION, None)
        if sim.shares_gpus:
            used = sim.behaviour.gpu_memory_at(self._now() - sim.gpu_started) \
                if running and not sim.suspended else None
            if used is not None and sim.gpu_cap is not None:
                used = min(used, sim.gpu_cap)  # restarted under this limit, it keeps within
            if used is not None and sim.swapped_mib:
                used = 0  # swapped out (or on its way back in): none of it on the device
            if running and not sim.suspended:
                annotations[ACTIVE_ANNOTATION] = "true" if self.gpu_active(sim) else "false"
            else:
                annotations.pop(ACTIVE_ANNOTATION, None)
            if sim.swapped_mib:
                annotations[SWAPPED_ANNOTATION] = str(sim.swapped_mib)
            else:
                annotations.pop(SWAPPED_ANNOTATION, None)
            if sim.gpu_restarts:
                annotations[GPU_RESTARTS_ANNOTATION] = str(sim.gpu_restarts)
            if used is not None:
                annotations[MEMORY_USED_ANNOTATION] = str(used)
            else:
                annotations.pop(MEMORY_USED_ANNOTATION, None)
            if annotations.get(MEMORY_USED_ANNOTATION) != sim.reported_memory:
                sim.reported_memory = annotations.get(MEMORY_USED_ANNOTATION)
                self._report_devices_of(sim)

    def _utilization(self, sim: PodSim) -> float:
        """What the pod's GPU process gets: a fraction that is idle, swapped out or being
        swapped in gets nothing, so a device's utilization is the sum of its active ones'."""
        if sim.shares_gpus and (sim.swapped_mib or sim.swap_due is not None
                                or not self.gpu_active(sim)):
            return 0.0
        return sim.behaviour.gpu_utilization

    def _device_memory(self, node: str, uuid: str) -> int:
        state = self.nodes.get(node)
        total = 0
        for other in state.pods if state else ():
            if other.shares_gpus and uuid in other.gpu_uuids and other.reported_memory:
                total += int(other.reported_memory)
        return total

    def _device_swapped(self, node: str, uuid: str) -> int:
        state = self.nodes.get(node)
        return sum(other.swapped_mib for other in (state.pods if state else ())
                   if other.shares_gpus and uuid in other.gpu_uuids)

    def _report_devices_of(self, sim: PodSim) -> None:
        """A fraction's memory in use changed: its devices' reservation pods say so, after
        this write (the loop's next turn)."""
        state = self.nodes.get(sim.node)
        if state is None or self._loop is None:
            return
        for other in list(state.pods):
            if other.reservation and other.gpu_uuids and other.gpu_uuids[0] in sim.gpu_uuids \
                    and other.stage in (STARTING, READY):
                self._push(other, 0.0, "gpu_memory")

    def _release(self, sim: PodSim) -> None:
        if not sim.active:
            return
        sim.active = False
        node = self.nodes.get(sim.node)
        if node is not None:
            node.free_devices(sim.uid)
            node.pods.discard(sim)
            if sim.ip_slot is not None:
                node.used_slots.discard(sim.ip_slot)

    def _forget(self, sim: PodSim) -> None:
        self._release(sim)
        sim.token += 1
        if self.sims.get(sim.uid) is sim:
            del self.sims[sim.uid]

    # node readiness (fault injection) --------------------------------------------------------

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Stop or restart a node's kubelet, as a node that stops reporting and comes back.

        NotReady: the node's Ready condition goes False with the not-ready taints; its pods'
        `Ready` conditions go False and their phase `Unknown`; nothing more happens to them
        until the node is Ready again or, after `nodeEvictionSeconds`, they are evicted
        (`DisruptionTarget`, then deleted). Ready: the pods carry on, and pods bound to the
        node meanwhile are admitted.
        """
        node = self.nodes[name]
        if node.ready == ready:
            return
        node.ready = ready
        when = now_rfc3339()

        def change(obj: dict[str, Any]) -> None:
            obj["status"]["conditions"] = node_conditions(ready, when)
            spec = obj.setdefault("spec", {})
            taints = [t for t in spec.get("taints") or ()
                      if t.get("key") not in ("node.kubernetes.io/not-ready",
                                              "node.kubernetes.io/unreachable")]
            if not ready:
                taints += not_ready_taints(when)
            if taints:
                spec["taints"] = taints
            else:
                spec.pop("taints", None)

        self.nodes_resource.mutate("", name, change)
        sims = [s for s in self.sims.values() if s.node == name]
        if not ready:
            for sim in sims:
                if sim.stage in (TERMINAL, REJECTED):
                    continue
                sim.suspended = True
                sim.token += 1  # nothing runs on a node that is down
                self._write(sim)
                self._schedule(sim, self.timings.node_eviction_seconds, "evict")
            return
        for sim in sims:
            if sim.suspended:
                sim.suspended = False
                sim.token += 1
                self._resume(sim)
        for stored in self.pods_resource.select(None, None):
            obj = stored.obj
            if obj.get("spec", {}).get("nodeName") == name and \
                    obj["metadata"].get("uid") not in self.sims:
                self._on_event(self.pods_resource, Event(MODIFIED, 0, stored, None))

    def _resume(self, sim: PodSim) -> None:
        if sim.deleting and sim.stage != NEW:
            self._schedule(sim, 0.0, "stop")
        elif sim.stage == NEW:
            self._schedule(sim, 0.0, "admit")
        elif sim.stage == CREATING:
            self._write(sim)
            self._pull(sim)
        elif sim.stage == STARTING:
            self._write(sim)
            self._schedule(sim, sim.behaviour.start_seconds, "ready")
        elif sim.stage == READY:
            self._do_ready(sim)
        elif sim.stage == BACKOFF:
            self._write(sim)
            self._schedule(sim, 0.0, "restart")

    def _do_evict(self, sim: PodSim) -> None:
        """The taint manager evicts a pod whose node stayed NotReady too long."""
        stored = self.pods_resource.get(sim.namespace, sim.name)
        if stored is None or stored.obj["metadata"].get("uid") != sim.uid:
            self._forget(sim)
            return
        when = now_rfc3339()

        def mark(pod: dict[str, Any]) -> None:
            status = pod.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or ()
                          if c.get("type") != "DisruptionTarget"]
            conditions.append({"type": "DisruptionTarget", "status": "True",
                               "lastProbeTime": None, "lastTransitionTime": when,
                               "reason": "DeletionByTaintManager",
                               "message": "Taint manager: deleting due to NoExecute taint"})
            status["conditions"] = conditions
            meta = pod["metadata"]
            meta.setdefault("deletionTimestamp", when)
            meta.setdefault("deletionGracePeriodSeconds", 0)

        self.pods_resource.mutate(sim.namespace, sim.name, mark)
        self._event(sim, "Normal", "TaintManagerEviction", f"Marking for deletion Pod "
                    f"{sim.namespace}/{sim.name}")
        if self.sims.get(sim.uid) is sim:
            self.pods_resource.delete(sim.namespace, sim.name)

    # introspection -------------------------------------------------------------------------

    def pending_transitions(self) -> int:
        return len(self._heap)


def go_duration(seconds: float) -> str:
    """A duration as Go prints it: 10s, 1m20s, 200ms, 1.5s."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:g}s"
    return f"{int(minutes)}m{text}" if minutes else text


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _mib(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _report_gpu_utilization(pod: dict[str, Any], sim: PodSim, phase: str,
                            utilization: float) -> None:
    """A running GPU pod (whole devices or a fraction) reports its utilization in an
    annotation (as an exporter would); any other drops it."""
    annotations = pod["metadata"].get("annotations")
    if phase == "Running" and (sim.requests.get(GPU_RESOURCE, 0) > 0 or sim.shares_gpus) and any(
            c.state == "running" for c in sim.containers):
        pod["metadata"].setdefault("annotations", {})[GPU_UTILIZATION_ANNOTATION] = \
            _fmt(utilization)
    elif annotations and GPU_UTILIZATION_ANNOTATION in annotations:
        del annotations[GPU_UTILIZATION_ANNOTATION]
