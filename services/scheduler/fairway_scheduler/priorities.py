"""Priority values by priority class name: the scheduler orders its queue by value."""

from fairway_contracts.workloads import PRIORITY_CLASSES

# Policy rejects unknown names; should one slip through, it queues like a training.
UNKNOWN_PRIORITY = PRIORITY_CLASSES["train"]


def priority_value(priority_class: str) -> int:
    return PRIORITY_CLASSES.get(priority_class, UNKNOWN_PRIORITY)
