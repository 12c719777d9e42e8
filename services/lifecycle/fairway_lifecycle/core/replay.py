"""`fairway lifecycle replay`: recorded pod watch events through lifecycle's state machine.

The input and output are a public contract (docs/replay-format.md). Pure apart from parsing
the lines it is given: no NATS, no database, no cluster. A thin driver: every line goes to the
same `Machine` the service's controller runs, and the phase steps it answers are the
transitions.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fairway_contracts import Phase, WorkloadType
from fairway_lifecycle.core.fold import LABEL_PROJECT, LABEL_WORKLOAD, WorkloadInfo
from fairway_lifecycle.core.machine import Machine, Workload, action_ignored, desire_for

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
            below_requested_grace_seconds=float(obj.get("belowRequestedGraceSeconds", 300)),
        )
    except KeyError as exc:
        raise ValueError(f"WORKLOAD needs {exc.args[0]}") from None
    except ValueError as exc:
        raise ValueError(f"WORKLOAD: {exc}") from None


def replay(lines: Iterable[str]) -> Iterator[Transition]:
    """Transitions in order; raises ReplayError naming the line of a malformed one."""
    machine = Machine(pod_groups=False)
    clock = EPOCH - timedelta(seconds=1)
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        kind, obj, clock = _parse(number, text, clock)
        if kind == "WORKLOAD":
            try:
                info = workload_from(obj)
            except ValueError as exc:
                raise ReplayError(number, str(exc)) from None
            if info.workload_id not in machine.workloads:
                machine.track(info.workload_id, Workload(info))
            wid = info.workload_id
        elif kind in ("ADDED", "MODIFIED", "DELETED"):
            wid = _observe(number, machine, kind, obj)
        elif kind == "ACTION":
            wid = _act(number, machine, obj)
        else:
            raise ReplayError(number, f"type {kind!r} is not WORKLOAD, ADDED, MODIFIED, "
                                      "DELETED or ACTION")
        step = machine.fold(wid, clock)
        if step is not None and step.result is not None:
            yield Transition(wid, step.previous, step.result.phase, step.result.reason,
                             step.result.message, clock)


def _parse(number: int, text: str, clock: datetime) -> tuple[Any, dict[str, Any], datetime]:
    """(type, object, time) of one line: its own time, else a second after the last."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(number, f"not JSON: {exc.msg}") from None
    if not isinstance(record, dict) or not isinstance(record.get("object"), dict):
        raise ReplayError(number, "expected {\"type\": …, \"object\": {…}}")
    if "time" not in record:
        return record.get("type"), record["object"], clock + timedelta(seconds=1)
    try:
        clock = datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(number, f"time {record['time']!r} is not RFC 3339") from None
    if clock.tzinfo is None:
        clock = clock.replace(tzinfo=UTC)
    return record.get("type"), record["object"], clock


def _observe(number: int, machine: Machine, kind: str, pod: dict[str, Any]) -> str:
    meta = pod.get("metadata")
    if not isinstance(meta, dict) or "name" not in meta:
        raise ReplayError(number, f"{kind} object has no metadata.name")
    wid = machine.observe(kind, pod)
    if wid is None:
        raise ReplayError(number, f"pod {meta['name']} has no {LABEL_WORKLOAD} label")
    if wid not in machine.workloads:  # a pod before its WORKLOAD line: a one-pod training
        machine.track(wid, Workload(WorkloadInfo(
            wid, wid, (meta.get("labels") or {}).get(LABEL_PROJECT, ""),
            WorkloadType.TRAINING)))
    return wid


def _act(number: int, machine: Machine, obj: dict[str, Any]) -> str:
    """An ACTION line, taken as the service takes the request."""
    action, wid = obj.get("action"), str(obj.get("workloadId"))
    if action not in ACTIONS:
        raise ReplayError(number, f"action {action!r} is not one of {', '.join(ACTIONS)}")
    w = machine.workloads.get(wid)
    if w is None:
        raise ReplayError(number, f"action for undeclared workload {obj.get('workloadId')!r}")
    if action == "preempt":
        if (preemption := machine.preemption(wid, None)) is not None:
            machine.preempt(wid, preemption)
    elif not action_ignored(w.phase, w.info.desired, action):
        if (desire := desire_for(w.info.desired, action)) is not None:
            machine.desire(wid, *desire)
    return wid
