"""The framework the actions run on: the `Session` (one cycle's working copy of the cluster)
and the `Statement` (an action's changes, as one log with checkpoint and rollback)."""

from fairway_scheduler.core.framework.session import (
    Hold,
    Request,
    Session,
    gang_need,
    pod_request,
    request_of,
    sized_apart,
    too_large,
)
from fairway_scheduler.core.framework.statement import Statement

__all__ = ["Hold", "Request", "Session", "Statement", "gang_need", "pod_request", "request_of",
           "sized_apart", "too_large"]
