"""Priority values by priority class name: the scheduler orders its queue by value.

A mirror of policy's table (fairway_policy.domain.PRIORITY_CLASSES, Run:ai's values): services
do not import each other, and the effective spec carries the class name only. It belongs in
fairway_contracts (or as a value in EffectiveSpec); until then keep the two equal.
"""

PRIORITY_VALUES: dict[str, int] = {
    "very-low": 25,
    "low": 40,
    "train": 50,
    "medium-low": 65,
    "interactive-preemptible": 75,
    "medium": 80,
    "medium-high": 90,
    "build": 100,
    "high": 125,
    "inference": 125,
    "very-high": 150,
}
# Policy rejects unknown names; should one slip through, it queues like a training.
UNKNOWN_PRIORITY = PRIORITY_VALUES["train"]


def priority_value(priority_class: str) -> int:
    return PRIORITY_VALUES.get(priority_class, UNKNOWN_PRIORITY)
