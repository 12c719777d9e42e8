"""What recording a workload's folded steps writes: the phase and pod group events to publish
and the workload's new recorded state. Pure: decided under the workload's row lock from what
the row holds (`Recorded`), the steps the machine folded since, and the machine's state.

Sequence numbers continue the recorded ones, so every transition is published exactly once,
across restarts too.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fairway_contracts import Phase, PodSummary, WorkloadType, subjects
from fairway_contracts.events import PhaseChanged, PodGroupChanged
from fairway_lifecycle.core.fold import WorkloadInfo, finished, summarize
from fairway_lifecycle.core.machine import Step


@dataclass(frozen=True)
class Named:
    """What a workload's events say of it."""

    workload_id: str
    name: str
    project: str
    workload_type: WorkloadType
    auto_deletion_seconds: int | None = None  # autoDeletionTimeAfterCompletionSeconds


@dataclass
class Recorded:
    """The columns recording a workload's steps reads, its row locked."""

    phase: Phase
    sequence: int
    desired: str
    resuming: bool
    preempted: bool
    podgroup_sequence: int
    podgroup_signature: str


@dataclass
class Progress:
    """A workload's new recorded state; phase, reason and message None when unchanged."""

    workload_id: str
    phase: Phase | None
    reason: str | None
    message: str | None
    sequence: int
    attempt: int
    podgroup_sequence: int
    podgroup_signature: str


@dataclass(frozen=True)
class Outgoing:
    """An event for the outbox: its subject, the event and its message id."""

    subject: str
    event: Any
    msg_id: str


@dataclass
class Recording:
    """What recording one workload's steps writes."""

    phase: Phase  # as recorded now, whether or not it moved
    outgoing: list[Outgoing]
    published: list[PhaseChanged]
    progress: Progress
    clear_preempted: bool = False  # placed again: the preemption is over
    preempted_pods: frozenset[str] = frozenset()  # kept when the preemption is cleared
    delete_after: datetime | None = None
    clear_resuming: str | None = None  # the desired phase to keep, resuming cleared

    @property
    def writes_more(self) -> bool:
        """Whether it changes more than the phase and the pod group (rare)."""
        return self.clear_preempted or self.delete_after is not None or (
            self.clear_resuming is not None)


def plan(w: Named, steps: list[Step], recorded: Recorded, folded: WorkloadInfo,
         node_pools: Mapping[str, str] | None = None) -> Recording:
    """The phase events for the steps that move the recorded phase (a step to the phase
    already recorded, or past the end, is none), and a pod group event when the group
    changed. `folded`: the workload as the machine holds it now; `node_pools`: node → its
    pool, for the pods' summaries."""
    summaries: dict[int, list[PodSummary]] = {}

    def pods(step: Step) -> list[PodSummary]:
        if id(step) not in summaries:
            summaries[id(step)] = summarize(step.pods, node_pools)
        return summaries[id(step)]

    phase, sequence = recorded.phase, recorded.sequence
    reason = message = None
    outgoing: list[Outgoing] = []
    published: list[PhaseChanged] = []
    last = steps[-1]
    last_step_phase: int | None = None  # the phase event of the last step, if it has one
    for step in steps:
        result = step.result
        if result is None or result.phase == phase or finished(phase, recorded.desired):
            continue
        sequence += 1
        event = PhaseChanged(
            event_id=f"{w.workload_id}:{sequence}",
            workload_id=w.workload_id, name=w.name, project=w.project,
            workload_type=w.workload_type, sequence=sequence, previous_phase=phase,
            phase=result.phase, reason=result.reason, message=result.message,
            time=step.time, pods=pods(step), attempt=step.attempt,
        )
        outgoing.append(Outgoing(subjects.phase(w.project, w.workload_id, result.phase), event,
                                 f"phase:{w.workload_id}:{sequence}"))
        published.append(event)
        phase, reason, message = result.phase, result.reason, result.message
        if step is last:
            last_step_phase = sequence
    group_sequence = recorded.podgroup_sequence
    # The scheduler hears of the pod group when a pod appears, is bound, finishes or goes
    # away, and when the workload ends; a phase change alone is not its business.
    if last.signature != recorded.podgroup_signature or (
            phase.terminal and not recorded.phase.terminal):
        group_sequence += 1
        group = PodGroupChanged(
            event_id=f"{w.workload_id}:group:{group_sequence}",
            workload_id=w.workload_id, name=w.name, project=w.project,
            workload_type=w.workload_type, sequence=group_sequence, phase=phase,
            attempt=last.attempt, pods=pods(last), time=last.time,
            phase_sequence=last_step_phase,
        )
        outgoing.append(Outgoing(subjects.podgroup(w.project, w.workload_id), group,
                                 f"podgroup:{w.workload_id}:{group_sequence}"))
    recording = Recording(phase, outgoing, published, Progress(
        w.workload_id, phase if published else None, reason, message, sequence,
        last.attempt, group_sequence, last.signature))
    if published:
        recording.clear_preempted = recorded.preempted and not folded.preempted
        recording.preempted_pods = folded.preempted_pods
        if phase in (Phase.COMPLETED, Phase.FAILED) and w.auto_deletion_seconds is not None:
            recording.delete_after = last.time + timedelta(seconds=w.auto_deletion_seconds)
        if recorded.resuming and phase not in (Phase.RESUMING, Phase.STOPPED, Phase.STOPPING):
            recording.clear_resuming = recorded.desired
    return recording
