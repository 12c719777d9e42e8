"""The Prometheus series of the metrics service, served on the Service's /metrics.

Every label value comes from a closed set (phases, workload types), never a workload id or a
project: one series per workload or project would grow without bound and swamp Prometheus.
Per-workload and per-project figures belong to the projections and the telemetry API.
"""

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

from fairway_contracts.workloads import Phase, WorkloadType
from fairway_metrics.domain import Outcome

WORKLOADS = Gauge(
    "fairway_workloads", "Workloads by current phase and type.", ["phase", "type"],
)
SUBMIT_TO_RUNNING = Histogram(
    "fairway_workload_submit_to_running_seconds",
    "From submission to the first time a workload is Running, once per workload.", ["type"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
SUBMIT_TO_COMPLETED = Histogram(
    "fairway_workload_submit_to_completed_seconds",
    "From submission to the first time a workload is Completed, once per workload.", ["type"],
    buckets=(10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800),
)
PHASE_TRANSITIONS = Counter(
    "fairway_phase_transitions", "Workload phase transitions, by the phase entered.", ["phase"],
)

# Every series exists from the start, at zero, so that rate() and absent() behave.
for _phase in Phase:
    PHASE_TRANSITIONS.labels(_phase.value)


def reset_workload_counts(counts: Mapping[tuple[str, str], int]) -> None:
    """Set the gauge to `counts` by (phase, type): every known pair, zero when absent."""
    WORKLOADS.clear()
    for phase in Phase:
        for workload_type in WorkloadType:
            WORKLOADS.labels(phase.value, workload_type.value).set(0)
    for (phase, workload_type), count in counts.items():
        WORKLOADS.labels(phase, workload_type).set(count)


def record(outcome: Outcome) -> None:
    workload_type = outcome.view.workload_type
    if outcome.entered_phase is not None:
        if outcome.left_phase is not None:
            WORKLOADS.labels(outcome.left_phase, workload_type).dec()
        WORKLOADS.labels(outcome.entered_phase, workload_type).inc()
    if outcome.transition is not None:
        PHASE_TRANSITIONS.labels(outcome.transition).inc()
    if outcome.submit_to_running is not None:
        SUBMIT_TO_RUNNING.labels(workload_type).observe(outcome.submit_to_running)
    if outcome.submit_to_completed is not None:
        SUBMIT_TO_COMPLETED.labels(workload_type).observe(outcome.submit_to_completed)
