"""A project's or department's status per node pool, as the API shows it: the figures the
scheduler last published for each of its queues (QueueStatusChanged, stored as it came)."""

from collections.abc import Iterable, Mapping
from typing import Any

RESOURCES = ("gpu", "cpu", "memory")
FIGURES = ("allocated", "allocatedNonPreemptible", "requested", "fairShare")
# Time-aware fairness on in the pool: the usage that counts, and the weight it corrected to.
OPTIONAL_FIGURES = ("usage", "adjustedOverQuotaWeight")


# The scheduler counts CPU in millicores; the API gives it in cores, as the quotas are given.
TO_API_UNIT = {"gpu": 1, "cpu": 1000, "memory": 1}


def _figure(status: Mapping[str, Any] | None, figure: str) -> dict[str, float]:
    if status is None:
        return {r: 0 for r in RESOURCES}
    return {r: float((status.get(r) or {}).get(figure, 0)) / TO_API_UNIT[r] for r in RESOURCES}


def _optional(status: Mapping[str, Any] | None, figure: str) -> dict[str, float | None] | None:
    """A figure only time-aware fairness gives (absent from every resource: None)."""
    if status is None:
        return None
    values = {r: (status.get(r) or {}).get(figure) for r in RESOURCES}
    if all(v is None for v in values.values()):
        return None
    unit = TO_API_UNIT if figure == "usage" else dict.fromkeys(RESOURCES, 1)  # weights: as is
    return {r: None if v is None else float(v) / unit[r] for r, v in values.items()}


def unit_status(configured_pools: Iterable[str], statuses: Mapping[str, Mapping[str, Any]]
                ) -> dict[str, Any]:
    """`statuses`: node pool → the unit's stored queue status there. Every pool the unit has a
    quota in, then every other pool the scheduler reports it in (where it has work)."""
    pools = list(configured_pools)
    pools += [pool for pool in sorted(statuses) if pool not in pools]
    return {"nodePoolResources": [
        {"nodePool": {"name": pool},
         **{figure: _figure(statuses.get(pool), figure) for figure in FIGURES},
         **{figure: value for figure in OPTIONAL_FIGURES
            if (value := _optional(statuses.get(pool), figure)) is not None}}
        for pool in pools]}
