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


def project_of(letter: DeadLetter) -> str | None:
    """The project of the workload the letter is about, if its payload names one (which
    lifecycle replica is to act on it)."""
    try:
        payload = json.loads(letter.payload)
    except ValueError:
        return None
    project = payload.get("project") if isinstance(payload, dict) else None
    return project if isinstance(project, str) and project else None


def stalled_workload(letter: DeadLetter) -> tuple[str, str] | None:
    """(workload id, why) when the letter leaves a workload unable to go on, else None."""
    what = _STALLING.get(letter.consumer)
    if letter.consumer.startswith("lifecycle-shard-") and ".decisions." in letter.subject:
        what = _STALLING["lifecycle-decisions"]  # a placement handed on to a shard's holder
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
