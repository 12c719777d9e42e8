"""The reclaim action: a queue below its fair share takes GPUs back from queues above theirs.

The preemptor's project (and, across departments, its department) is below its fair share;
victims come from queues above theirs, the most over-served first (departments, then
projects), lowest priority and newest first inside one; no victim queue ends below its fair
share; the reclaiming queue ends no more saturated (allocated / fair share) than any queue it
took from. Fairness is counted in GPUs, the resource queues contend for; CPU and memory quotas
only limit.
"""

from fairway_scheduler.core import reasons
from fairway_scheduler.core.actions.solver import (
    Solver,
    Unit,
    evicted_pods,
    label,
    saturation,
    top,
)
from fairway_scheduler.core.model import Workload
from fairway_scheduler.core.queues import GPU, MILLI, Queue


def reclaim(solver: Solver, workload: Workload, pool: str) -> bool:
    """Reclaim room for `workload` in `pool`; True when it was placed."""
    session = solver.session
    if pool not in session.pools:
        return False
    reclaimer = session.queues.project(workload.project, pool)
    if reclaimer.allocated[GPU] >= reclaimer.fair[GPU]:
        return False
    department = top(reclaimer)

    def level(victim: Queue) -> list[Queue]:
        """The victim's queues that the reclaimer does not share: the rules apply there."""
        return [q for q in victim.chain() if q is not reclaimer and q is not department]

    if department is not reclaimer and department.allocated[GPU] >= department.fair[GPU]:
        # Below its share inside its department, but the department is not: only its own
        # department's other projects may give (their queues are compared below).
        def eligible(victim: Queue) -> bool:
            return victim.parent is department and victim is not reclaimer
    else:
        def eligible(victim: Queue) -> bool:
            return victim is not reclaimer

    queues = [q for q in solver.queues_in(pool) if eligible(q)
              and all(x.allocated[GPU] > x.fair[GPU] for x in level(q))]
    if not queues and not solver.freed:
        return False

    def admissible(unit: Unit) -> bool:
        queue = session.queues.project(unit.workload.project, pool)
        return all(q.allocated[GPU] - unit.gpu >= q.fair[GPU] for q in level(queue))

    def fair_after(victims: list[Unit]) -> bool:
        # Compared level for level: a department with the reclaimer's department (or
        # department-less project), a project with the reclaimer's project.
        for unit in victims:
            for q in level(session.queues.project(unit.workload.project, pool)):
                mine = saturation(department if q.parent is None else reclaimer)
                if q.allocated[GPU] < q.fair[GPU] or saturation(q) < mine:
                    return False
        return True

    def describe(unit: Unit) -> str:
        queue = session.queues.project(unit.workload.project, pool)
        share = reasons.number(queue.fair[GPU] / MILLI)
        return (f"project {unit.workload.project} uses more than its fair share of {share} "
                f"GPUs in pool {pool}, and project {workload.project} below its share needs "
                f"them back: {evicted_pods(unit)} ({reasons.resource(GPU, unit.gpu)}) make "
                f"room for {label(workload)}")

    return solver.attempt(workload, pool, "reclaim", solver.by_queue_order(queues, pool),
                          admissible, fair_after, describe)
