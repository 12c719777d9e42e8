"""Which dead-lettered messages leave a workload unable to go on, and how to say so. A message
that failed every delivery is set aside (the dead-letter stream) so it blocks nobody; without
this, the workload it was about would wait for ever with no word of why."""

import json

from fairway_contracts.events import DeadLetter

# consumer -> (the service, what the message was): the ones a workload cannot do without.
_STALLING = {
    "scheduler-workloads": ("scheduler", "submission"),
    "scheduler-podgroups": ("scheduler", "pods"),
    "lifecycle-decisions": ("lifecycle", "placement"),
}


def stalled_workload(letter: DeadLetter) -> tuple[str, str] | None:
    """(workload id, why) when the letter leaves a workload unable to go on, else None."""
    what = _STALLING.get(letter.consumer)
    if what is None:
        return None
    try:
        payload = json.loads(letter.payload)
    except ValueError:
        return None
    workload_id = payload.get("workloadId") if isinstance(payload, dict) else None
    if not isinstance(workload_id, str) or not workload_id:
        return None
    service, message = what
    return workload_id, (f"the {service} service could not handle its {message} message "
                         f"({letter.deliveries} deliveries): {letter.error[:300]}")
