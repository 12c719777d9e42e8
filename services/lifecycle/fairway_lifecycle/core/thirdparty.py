"""Third-party workloads as lifecycle announces them (pure): which owners a set of pods still
needs read, and the `ThirdPartyWorkloadChanged` of each workload the grouper formed.

`core.grouping` forms the workloads; this module adds what one pod asks for (the scheduler's
request needs it) and a content id, so an announcement that says nothing new is the same
message (JetStream drops it) and a restart that announces everything again changes nothing.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fairway_contracts.events import ThirdPartyWorkloadChanged
from fairway_contracts.workloads import Phase, WorkloadType
from fairway_lifecycle.core.fold import PhaseResult, WorkloadInfo, fold, summarize
from fairway_lifecycle.core.foreign import pod_requests
from fairway_lifecycle.core.grouping import Owner, OwnerRef, ThirdPartyWorkload, owner_refs


def missing_owners(pods: Iterable[Mapping[str, Any]], owners: Mapping[str, Owner],
                   unreadable: set[str]) -> dict[str, tuple[str, OwnerRef]]:
    """The owners (by uid: namespace, reference) that the pods' owner chains name and that
    are neither known nor known to be unreadable (gone, or a kind lifecycle cannot read)."""
    wanted: dict[str, tuple[str, OwnerRef]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace", ""))
        refs = list(owner_refs(meta))
        seen: set[str] = set()
        while refs:
            ref = refs.pop()
            if ref.uid in seen:
                continue  # a loop in the references
            seen.add(ref.uid)
            owner = owners.get(ref.uid)
            if owner is not None:
                refs.extend(owner.owner_references)
            elif ref.uid not in unreadable:
                wanted[ref.uid] = (namespace, ref)
    return wanted


# A third-party pod asks for a fraction of one GPU by annotation, with no `nvidia.com/gpu`
# request (Run:ai's names, or Fairway's): a portion of the device, or an amount of its memory.
FRACTION_ANNOTATIONS = ("gpu-fraction", "fairway.io/gpu-fraction")
MEMORY_ANNOTATIONS = ("gpu-memory", "fairway.io/gpu-memory")  # MiB
INVALID_FRACTION = "InvalidGpuFraction"


@dataclass(frozen=True, slots=True)
class Fraction:
    """What a third-party pod's annotations ask of one GPU; `problem` when they cannot be
    read (the workload waits with it)."""

    portion: float | None = None
    memory_mib: int | None = None
    problem: str | None = None


def pod_fraction(pod: Mapping[str, Any]) -> Fraction | None:
    """The fraction a pod asks for by annotation (None: it asks for none, or for whole
    GPUs, which then count alone)."""
    notes = (pod.get("metadata") or {}).get("annotations") or {}
    if pod_requests(pod.get("spec") or {})[0]:
        return None
    fraction = next(((k, notes[k]) for k in FRACTION_ANNOTATIONS if k in notes), None)
    memory = next(((k, notes[k]) for k in MEMORY_ANNOTATIONS if k in notes), None)
    if fraction and memory:
        return Fraction(problem=f"annotations {fraction[0]}: \"{fraction[1]}\" and "
                                f"{memory[0]}: \"{memory[1]}\" both ask for a fraction of a "
                                "GPU: keep one")
    if fraction:
        key, value = fraction
        try:
            portion = float(str(value).strip())
        except ValueError:
            portion = 0.0
        if not 0 < portion < 1:  # NaN fails too
            return Fraction(problem=f"annotation {key}: \"{value}\" is not a fraction of a "
                                    "GPU: it must be a number between 0 and 1, such as \"0.5\"")
        return Fraction(portion=portion)
    if memory:
        key, value = memory
        text = str(value).strip()
        if not text.isdigit() or int(text) <= 0:
            return Fraction(problem=f"annotation {key}: \"{value}\" is not an amount of GPU "
                                    "memory: it must be a positive whole number of MiB, such "
                                    "as \"10240\"")
        return Fraction(memory_mib=int(text))
    return None


# Kinds whose pods run to completion: folded as a training (Completed once its pods succeed);
# every other kind as a workspace (runs until deleted).
RUN_TO_COMPLETION = frozenset({"Job", "PyTorchJob", "Pod"})
NO_PROJECT = "NoProject"


def third_party_phase(workload: ThirdPartyWorkload, pods: list[Mapping[str, Any]],
                      now: datetime | None = None, fraction: Fraction | None = None
                      ) -> PhaseResult:
    """The workload's phase from its pods, by the fold of Fairway's own workloads. A
    workload of no project, or whose fraction annotation cannot be read, waits with the
    reason. Its owner's controller replaces failed pods: a failed pod fails the workload
    only when no other pod is left to run."""
    if workload.problem:
        return PhaseResult(Phase.PENDING, NO_PROJECT, workload.problem)
    if fraction is not None and fraction.problem:
        return PhaseResult(Phase.PENDING, INVALID_FRACTION, fraction.problem)
    live = [p for p in pods if (p.get("status") or {}).get("phase") != "Failed"]
    current = live if live else pods
    info = WorkloadInfo(
        workload_id=workload.id, name=workload.name, project=workload.project or "",
        workload_type=(WorkloadType.TRAINING if workload.kind in RUN_TO_COMPLETION
                       else WorkloadType.WORKSPACE),
        pods=max(len(current), 1), min_pods=min(workload.min_members, max(len(current), 1)),
        backoff_limit=0, noun=workload.kind,
        has_run=any((p.get("status") or {}).get("phase") in ("Running", "Succeeded")
                    for p in current))
    return fold(info, [dict(p) for p in current], now)


def announcement(workload: ThirdPartyWorkload, pods: Mapping[str, Mapping[str, Any]],
                 observed_at: datetime, gone: bool = False) -> ThirdPartyWorkloadChanged:
    """The event for one workload; `pods`: its pods by name (the first, by name, speaks for
    what each pod asks for)."""
    first = pods.get(workload.pods[0]) if workload.pods else None
    gpus, cpu, memory = pod_requests((first or {}).get("spec") or {})
    fraction = pod_fraction(first) if first is not None else None
    fields: dict[str, Any] = dict(
        workload_id=workload.id, kind=workload.kind, api_version=workload.api_version,
        name=workload.name, namespace=workload.namespace, owner_uid=workload.owner_uid,
        grouping=workload.grouping, min_members=workload.min_members, project=workload.project,
        problem=workload.problem or (fraction.problem if fraction else None),
        gpu_portion=fraction.portion if fraction else None,
        gpu_memory_mib=fraction.memory_mib if fraction else None,
        priority_class=workload.priority_class,
        priority=workload.priority, preemptible=workload.preemptible,
        pods=[] if gone else list(workload.pods), replicas=workload.replicas,
        gpus_per_pod=gpus, cpu_millis=cpu,
        memory_mib=memory, gone=gone)
    if not gone:
        members = [pods[name] for name in workload.pods if name in pods]
        result = third_party_phase(workload, members, observed_at, fraction)
        fields.update(phase=result.phase, phase_reason=result.reason,
                      phase_message=result.message,
                      pod_summaries=summarize([dict(p) for p in members]))
    content = ThirdPartyWorkloadChanged.model_validate(
        {**fields, "event_id": "", "observed_at": observed_at}).model_dump_json(
        exclude={"event_id", "observed_at"})
    digest = hashlib.sha256(content.encode()).hexdigest()[:24]
    return ThirdPartyWorkloadChanged(event_id=f"tp:{workload.id}:{digest}",
                                     observed_at=observed_at, **fields)


UNSCHEDULABLE = "Unschedulable"  # kube-scheduler's reason for a pod it could not place


def waiting_condition(code: str | None, message: str | None, now: datetime) -> dict[str, Any]:
    """The `PodScheduled` condition a waiting pod carries, as kube-scheduler writes it (so
    `kubectl describe pod` and every tool that reads it say why), with the scheduler's reason."""
    text = f"{code}: {message}" if code and message else (message or code or "waiting")
    return {"type": "PodScheduled", "status": "False", "reason": UNSCHEDULABLE,
            "message": text, "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}


def pods_to_tell(pods: Iterable[Mapping[str, Any]], condition: Mapping[str, Any]
                 ) -> list[str]:
    """The names of the pods that wait for a node (unbound, not being deleted) and do not
    say `condition`'s message yet."""
    names = []
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if spec.get("nodeName") or meta.get("deletionTimestamp"):
            continue
        said = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                     if c.get("type") == "PodScheduled"), None)
        if said is None or said.get("status") != "False" or \
                said.get("message") != condition["message"]:
            names.append(str(meta.get("name", "")))
    return sorted(names)
