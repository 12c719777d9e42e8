"""The stale-gang action: a running workload below its minimum pods for longer than the grace
period is evicted whole, so that a partial gang does not hold GPUs."""

from fairway_scheduler.core import reasons
from fairway_scheduler.core.actions.solver import Solver, Unit
from fairway_scheduler.core.framework import Statement
from fairway_scheduler.core.queues import GPU


def evict_stale_gangs(solver: Solver) -> None:
    session = solver.session
    now = session.now
    grace = solver.settings.stale_gang_grace
    if now is None:
        return
    for wid, holds in sorted(solver.holds.items()):
        w = holds[0].workload
        if (wid in solver.evicted or w.below_min_since is None
                or session.held.get(wid, 0) >= w.min_pods):
            continue
        short = (now - w.below_min_since).total_seconds()
        if short < grace:
            continue
        unit = Unit(w, list(holds), False)
        statement = Statement(session)
        for hold in unit.holds:
            statement.evict(hold)
        statement.commit()
        gpus = reasons.resource(GPU, unit.gpu)
        solver.record_eviction(
            unit, "stale-gang", None,
            f"ran with {len(holds)} of its {w.min_pods} pods for {short:.0f} s (the grace "
            f"period is {grace:.0f} s): evicted whole so that a partial gang does not hold "
            f"{gpus}; it waits for all its pods again")
