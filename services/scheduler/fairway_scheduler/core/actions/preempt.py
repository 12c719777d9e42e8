"""The preempt action: inside one queue, a workload of higher priority takes the room of
preemptible ones of strictly lower priority (lowest and newest first) in the same project and
pool. Quotas still apply: a non-preemptible preemptor stays within deserved; a limit counts
what the victims give back.
"""

from fairway_scheduler.core.actions.solver import Solver, Unit, evicted_pods, label
from fairway_scheduler.core.model import Workload


def preempt(solver: Solver, workload: Workload, pool: str) -> bool:
    """Preempt for `workload` in `pool`; True when it was placed."""
    if pool not in solver.session.pools:
        return False
    units = solver.live_units_below(workload.project, pool, workload.priority)
    if not units and not solver.freed:
        return False

    def describe(unit: Unit) -> str:
        return (f"{label(workload)} in project {workload.project} has a higher priority "
                f"({workload.priority} over {unit.workload.priority}) and needs room in pool "
                f"{pool}: {evicted_pods(unit)} ({unit.gives()}) make room "
                "for it")

    domains = solver.required_domains(workload, pool, workload.project.__eq__)
    if domains is not None:
        # a required topology placement: the victims of one domain at a time
        return any(solver.attempt(workload, pool, "preempt",
                                  (u for u in units if solver.in_domain(u, domain)),
                                  lambda _: True, lambda _: True, describe,
                                  shape=(workload.priority, domain.key))
                   for domain in domains)
    return solver.attempt(workload, pool, "preempt", iter(units), lambda _: True,
                          lambda _: True, describe, shape=workload.priority)
