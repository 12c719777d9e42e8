"""What a failed Kubernetes call means for the workload: a refusal that no retry can change
ends it `Failed` once, with the API server's reason; anything else is tried again, later each
time, never faster than the back-off allows."""

import json

# Reasons a workload fails with when its pods cannot be made.
CREATE_REJECTED = "CreateRejected"  # the Kubernetes API refused them for good
POD_SPEC_INVALID = "PodSpecInvalid"  # lifecycle could not build them from the spec
CREATION_FAILURES = frozenset({CREATE_REJECTED, POD_SPEC_INVALID})
UNDELIVERABLE = "Undeliverable"  # a message it cannot go on without was dead-lettered

# 4xx answers that may change with time: 403 (an exhausted ResourceQuota, or RBAC an
# administrator can grant), 404 (a namespace being replaced), 408, 409 and 429.
_MAY_CHANGE = frozenset({403, 404, 408, 409, 429})


def refusal_is_permanent(status: int) -> bool:
    """True for a client error the same request will always get again (400 Bad Request, 422
    Invalid, 413 ...)."""
    return 400 <= status < 500 and status not in _MAY_CHANGE


def refusal_message(body: str) -> str:
    """The API server's own words: a Status object's `message`, else the body (shortened)."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    text = message if isinstance(message, str) and message else body
    return text if len(text) <= 500 else text[:497] + "..."


def backoff_delay(attempt: int, base: float, cap: float, spread: float) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): `base` doubling up to `cap`, then
    scaled by `spread` in [0.5, 1] (drawn by the caller) so retries of many workloads that
    failed together do not come back together."""
    return min(cap, base * 2 ** min(attempt - 1, 30)) * min(1.0, max(0.5, spread))
