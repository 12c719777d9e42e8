"""Fairway event contracts: every subject, stream, consumer and payload, declared once."""

from fairway_contracts import events, streams, subjects
from fairway_contracts.base import Contract
from fairway_contracts.workloads import (
    TERMINAL_PHASES,
    EffectiveSpec,
    Phase,
    PodRole,
    PodSummary,
    WorkloadType,
)

__all__ = [
    "TERMINAL_PHASES",
    "Contract",
    "EffectiveSpec",
    "Phase",
    "PodRole",
    "PodSummary",
    "WorkloadType",
    "events",
    "streams",
    "subjects",
]
