"""Scheduling rules: whether a running workload has hit its time limit or its idle GPU limit.

Pure, no I/O: the enforcer (enforcer.py) passes in what it counted and the rules it learned
from the ORG stream. Run:ai's rules, per project and department, in seconds:

- interactive (workspaces): `interactiveJobTimeLimitSeconds`,
  `interactiveJobMaxIdleDurationSeconds`;
- training (trainings and distributed workloads): `trainingJobTimeLimitSeconds`,
  `trainingJobMaxIdleDurationSeconds`;
- inference is never stopped by these rules: a serving endpoint is expected to sit idle
  between requests, and stopping it would take the service down.

The effective limit is the stricter (smaller) of the project's and its department's; on a tie
the department is named, as the project only repeated its rule. The time limit counts the time
spent Running (and Degraded: its pods still hold GPUs). The idle limit counts consecutive idle
windows (every GPU pod reported zero utilization for the whole window), as Run:ai's idle
duration: one busy window starts the count again.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fairway_contracts import Phase, WorkloadType
from fairway_contracts.workloads import IDLE_LIMIT_REASON, TIME_LIMIT_REASON
from fairway_lifecycle.core.fold import attempt_of
from fairway_lifecycle.core.fractions import (
    ANN_DEVICES,
    ANN_MEMORY_USED,
    ANN_PORTION,
    LABEL_FRACTION,
)

Category = Literal["interactive", "training"]


@dataclass(frozen=True)
class Scope:
    """A project or department and its rules (camelCase keys as on the wire; absent: none)."""

    kind: Literal["project", "department"]
    name: str
    rules: dict[str, int]


@dataclass(frozen=True)
class Limit:
    seconds: int
    kind: Literal["project", "department"]
    name: str

    @property
    def source(self) -> str:
        return f"the {self.kind} {self.name}"


@dataclass(frozen=True)
class Usage:
    """What the enforcer counted for one run of a workload."""

    running_seconds: float
    idle_windows: int  # consecutive
    window_seconds: float

    @property
    def idle_seconds(self) -> float:
        return self.idle_windows * self.window_seconds


@dataclass(frozen=True)
class Verdict:
    """Stop the workload: the phase reason (a stable code) and a sentence with the numbers."""

    reason: str
    message: str


def category(workload_type: WorkloadType) -> Category | None:
    return {WorkloadType.WORKSPACE: "interactive", WorkloadType.TRAINING: "training",
            WorkloadType.DISTRIBUTED: "training"}.get(workload_type)


def _stricter(key: str, scopes: list[Scope]) -> Limit | None:
    best: Limit | None = None
    # Department first: on a tie it keeps the credit.
    for scope in sorted(scopes, key=lambda s: s.kind != "department"):
        value = scope.rules.get(key)
        if value is None:
            continue
        if best is None or value < best.seconds:
            best = Limit(int(value), scope.kind, scope.name)
    return best


def effective_limits(workload_type: WorkloadType, project: Scope | None,
                     department: Scope | None) -> tuple[Limit | None, Limit | None]:
    """(time limit, idle GPU limit) for the workload type: the stricter of both scopes."""
    kind = category(workload_type)
    if kind is None:
        return None, None
    scopes = [s for s in (project, department) if s is not None]
    prefix = "interactiveJob" if kind == "interactive" else "trainingJob"
    return (_stricter(f"{prefix}TimeLimitSeconds", scopes),
            _stricter(f"{prefix}MaxIdleDurationSeconds", scopes))


def _s(seconds: float) -> str:
    return f"{int(seconds):,} s"


def verdict(workload_type: WorkloadType, usage: Usage, project: Scope | None,
            department: Scope | None) -> Verdict | None:
    """Whether to stop the workload now, and why; None: let it run."""
    time_limit, idle_limit = effective_limits(workload_type, project, department)
    kind = category(workload_type)
    if time_limit is not None and usage.running_seconds >= time_limit.seconds:
        return Verdict(TIME_LIMIT_REASON,
                       f"stopped: running for {_s(usage.running_seconds)}, over "
                       f"{time_limit.source}'s {kind} time limit of "
                       f"{_s(time_limit.seconds)}")
    if idle_limit is not None and usage.idle_windows > 0 and (
            usage.idle_seconds >= idle_limit.seconds):
        return Verdict(IDLE_LIMIT_REASON,
                       f"stopped: idle for {_s(usage.idle_seconds)}, over "
                       f"{idle_limit.source}'s idle GPU limit of {_s(idle_limit.seconds)} "
                       f"({usage.idle_windows} windows of {_s(usage.window_seconds)} with zero "
                       "GPU utilization)")
    return None


# one window of utilization ------------------------------------------------------------------

@dataclass(frozen=True)
class PodSample:
    """One GPU pod at one moment: its GPUs and the utilization it reported (None: none yet)."""

    gpus: float
    utilization: float | None
    gpu_memory_used_mib: int | None = None  # GPU fractions: as the node reports it


@dataclass(frozen=True)
class WindowSummary:
    gpus: float  # the most GPUs the workload's running pods held in the window
    utilization_percent: float  # GPU-weighted mean over the window's samples
    idle: bool  # every GPU pod reported zero in every sample of the window
    gpu_memory_used_mib: int | None = None  # GPU fractions: in use at the window's last sample


def summarize_window(samples: list[list[PodSample]]) -> WindowSummary | None:
    """A window from its samples (one list of GPU pods per sample). None when no sample saw a
    GPU pod: a workload without GPUs has no GPU utilization, idle or not. A pod that has not
    reported yet makes the window not idle: the rule never stops a workload on missing data."""
    seen = [sample for sample in samples if sample]
    if not seen:
        return None
    weighted = total = 0.0
    idle = True
    for sample in seen:
        for pod in sample:
            if pod.utilization is None:
                idle = False
                continue
            weighted += pod.utilization * pod.gpus
            total += pod.gpus
            if pod.utilization > 0:
                idle = False
    percent = weighted / total if total else 0.0
    gpus = max(sum(pod.gpus for pod in sample) for sample in seen)
    used = [pod.gpu_memory_used_mib for pod in seen[-1] if pod.gpu_memory_used_mib is not None]
    return WindowSummary(gpus=gpus, utilization_percent=round(min(100.0, percent), 3),
                         idle=idle, gpu_memory_used_mib=sum(used) if used else None)


# what the enforcer counts ------------------------------------------------------------------

GPU_UTILIZATION_ANNOTATION = "kubesim.fairway.io/gpu-utilization"
RUNNING = frozenset({Phase.RUNNING, Phase.DEGRADED})


def pod_gpus(pod: dict[str, Any]) -> float:
    """Whole devices, or a fraction's portion of each device it shares."""
    notes = pod["metadata"].get("annotations") or {}
    if (pod["metadata"].get("labels") or {}).get(LABEL_FRACTION) == "true":
        try:
            devices = len([d for d in (notes.get(ANN_DEVICES) or "").split(",") if d])
            return float(notes.get(ANN_PORTION) or 0) * max(devices, 1)
        except ValueError:
            return 0.0
    total = 0.0
    for c in pod.get("spec", {}).get("containers") or []:
        limits = (c.get("resources") or {}).get("limits") or {}
        try:
            total += float(limits.get("nvidia.com/gpu", 0))
        except (TypeError, ValueError):
            continue
    return total


def pod_samples(pods: list[dict[str, Any]], attempt: int) -> list[PodSample]:
    """The GPU pods of the current attempt that run now, with what each reports."""
    out = []
    for pod in pods:
        gpus = pod_gpus(pod)
        if not gpus or attempt_of(pod) != attempt or pod["metadata"].get("deletionTimestamp"):
            continue
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        raw = (pod["metadata"].get("annotations") or {}).get(GPU_UTILIZATION_ANNOTATION)
        try:
            value = None if raw is None else min(100.0, max(0.0, float(raw)))
        except ValueError:
            value = None
        used = (pod["metadata"].get("annotations") or {}).get(ANN_MEMORY_USED)
        out.append(PodSample(gpus=gpus, utilization=value,
                             gpu_memory_used_mib=int(used) if used and used.isdigit() else None))
    return out


@dataclass
class UsageState:
    """One run of a workload as counted: closed running stretches, the open one, and the
    consecutive idle windows up to the last window end recorded."""

    running_seconds: float = 0.0
    running_since: datetime | None = None
    idle_windows: int = 0
    last_window_end: datetime | None = None

    def with_stretch(self, since: datetime | None, now: datetime) -> "UsageState":
        """Open (since=now) or close (since=None) a running stretch."""
        seconds = self.running_seconds
        if since is None and self.running_since is not None:
            seconds += max(0.0, (now - self.running_since).total_seconds())
        return UsageState(seconds, since, self.idle_windows, self.last_window_end)

    def running_at(self, now: datetime) -> float:
        open_stretch = (now - self.running_since).total_seconds() if self.running_since else 0
        return self.running_seconds + max(0.0, open_stretch)
