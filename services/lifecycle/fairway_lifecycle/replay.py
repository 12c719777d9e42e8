"""`fairway lifecycle replay`: the real phase fold over recorded pod watch events.

The input and output are a public contract (replay-format.md). Pure apart from parsing the
lines it is given: no NATS, no database, no cluster. The service's controller keeps the same
per-workload state (attempt, has run, desired phase, preempted) the same way.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fairway_contracts import Phase, WorkloadType
from fairway_lifecycle.fold import (
    LABEL_WORKLOAD,
    PhaseResult,
    WorkloadInfo,
    attempt_of,
    finished,
    fold,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ACTIONS = ("stop", "resume", "delete", "preempt")


class ReplayError(ValueError):
    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Transition:
    workload_id: str
    previous: Phase | None
    phase: Phase
    reason: str
    message: str
    time: datetime

    def to_json(self) -> dict[str, Any]:
        return {"workloadId": self.workload_id,
                "from": self.previous.value if self.previous else None,
                "to": self.phase.value, "reason": self.reason, "message": self.message,
                "time": self.time.isoformat().replace("+00:00", "Z")}


@dataclass
class WorkloadState:
    """What lifecycle knows of one workload beyond its pods."""

    info: WorkloadInfo
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    phase: Phase | None = None

    def apply(self, result: PhaseResult) -> None:
        """Carry the fold's verdict into the workload's state, as the controller does."""
        info = self.info
        if result.retry:
            info = replace(info, attempt=info.attempt + 1, has_run=False)
        elif result.phase == Phase.RUNNING:
            info = replace(info, has_run=True)
        if info.resuming and result.phase not in (Phase.RESUMING, Phase.STOPPED):
            info = replace(info, resuming=False)
        if info.preempted and result.phase in (Phase.INITIALIZING, Phase.RUNNING):
            info = replace(info, preempted=False)  # placed again: the preemption is over
        self.info = info
        self.phase = result.phase


def workload_from(obj: dict[str, Any]) -> WorkloadInfo:
    try:
        return WorkloadInfo(
            workload_id=str(obj["workloadId"]),
            name=str(obj.get("name", obj["workloadId"])),
            project=str(obj.get("project", "")),
            workload_type=WorkloadType(obj.get("workloadType", "training")),
            pods=int(obj.get("pods", 1)),
            min_pods=int(obj.get("minPods", obj.get("pods", 1))),
            backoff_limit=int(obj.get("backoffLimit", 6)),
            completions=obj.get("completions"),
            framework=obj.get("distributedFramework"),
            has_master=bool(obj.get("hasMaster", True)),
            terminate_after_preemption=bool(obj.get("terminateAfterPreemption", False)),
            image_pull_deadline_seconds=float(obj.get("imagePullDeadlineSeconds", 300)),
        )
    except KeyError as exc:
        raise ValueError(f"WORKLOAD needs {exc.args[0]}") from None
    except ValueError as exc:
        raise ValueError(f"WORKLOAD: {exc}") from None


def replay(lines: Iterable[str]) -> Iterator[Transition]:
    """Transitions in order; raises ReplayError naming the line of a malformed one."""
    workloads: dict[str, WorkloadState] = {}
    clock = EPOCH - timedelta(seconds=1)
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReplayError(number, f"not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get("object"), dict):
            raise ReplayError(number, "expected {\"type\": …, \"object\": {…}}")
        kind, obj = record.get("type"), record["object"]
        if "time" in record:
            try:
                clock = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
            except ValueError:
                raise ReplayError(number, f"time {record['time']!r} is not RFC 3339") from None
            if clock.tzinfo is None:
                clock = clock.replace(tzinfo=UTC)
        else:
            clock += timedelta(seconds=1)

        if kind == "WORKLOAD":
            try:
                info = workload_from(obj)
            except ValueError as exc:
                raise ReplayError(number, str(exc)) from None
            state = workloads.setdefault(info.workload_id, WorkloadState(info))
            yield from _fold(state, clock)
        elif kind in ("ADDED", "MODIFIED", "DELETED"):
            meta = obj.get("metadata")
            if not isinstance(meta, dict) or "name" not in meta:
                raise ReplayError(number, f"{kind} object has no metadata.name")
            wid = (meta.get("labels") or {}).get(LABEL_WORKLOAD)
            if not wid:
                raise ReplayError(number, f"pod {meta['name']} has no {LABEL_WORKLOAD} label")
            state = workloads.get(wid)
            if state is None:  # a pod before its WORKLOAD line: a one-pod training
                state = workloads[wid] = WorkloadState(WorkloadInfo(
                    wid, wid, (meta.get("labels") or {}).get("fairway.io/project", ""),
                    WorkloadType.TRAINING))
            if kind == "DELETED":
                state.pods.pop(meta["name"], None)
            else:
                state.pods[meta["name"]] = obj
            yield from _fold(state, clock)
        elif kind == "ACTION":
            action, wid = obj.get("action"), obj.get("workloadId")
            if action not in ACTIONS:
                raise ReplayError(number, f"action {action!r} is not one of {', '.join(ACTIONS)}")
            state = workloads.get(str(wid))
            if state is None:
                raise ReplayError(number, f"action for undeclared workload {wid!r}")
            info = state.info
            if action == "stop":
                info = replace(info, desired="Stopped")
            elif action == "resume":
                info = replace(info, desired="Running", resuming=True, has_run=False,
                               attempt=max([info.attempt, *map(attempt_of,
                                                               state.pods.values())]))
            elif action == "delete":
                info = replace(info, desired="Deleted")
            else:
                evicted = frozenset(p["metadata"].get("uid", p["metadata"]["name"])
                                    for p in state.pods.values())
                info = replace(info, preempted=True, has_run=False,
                               preempted_pods=info.preempted_pods | evicted)
            state.info = info
            yield from _fold(state, clock)
        else:
            raise ReplayError(number, f"type {kind!r} is not WORKLOAD, ADDED, MODIFIED, "
                                      "DELETED or ACTION")


def _fold(state: WorkloadState, now: datetime) -> Iterator[Transition]:
    if finished(state.phase, state.info.desired):
        return  # terminal phases absorb everything but a deletion
    result = fold(state.info, list(state.pods.values()), now)
    previous = state.phase
    state.apply(result)
    if result.phase != previous:
        yield Transition(state.info.workload_id, previous, result.phase, result.reason,
                         result.message, now)
