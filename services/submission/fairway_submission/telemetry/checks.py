"""The telemetry routes' query parameters, checked, and the metrics service's refusals as the
API's errors. Pure."""

from datetime import UTC, datetime

from fairway_contracts.telemetry import MetricType, QueryError, TelemetryGroupBy
from fairway_submission.core.errors import ApiError, field_error

MAX_GROUP_BY = 2


def _listed(values: list[str] | None) -> list[str]:
    """A list parameter given repeated (`a=x&a=y`), comma-separated (`a=x,y`) or both."""
    return [item.strip() for value in values or [] for item in value.split(",")
            if item.strip()]


def parse_group_by(values: list[str] | None) -> list[TelemetryGroupBy]:
    known = {g.value: g for g in TelemetryGroupBy}
    out: list[TelemetryGroupBy] = []
    for item in _listed(values):
        group = known.get(item.lower())
        if group is None:
            raise field_error(422, "groupBy", f"{item!r} is not one of {', '.join(known)}")
        if group in out:
            raise field_error(422, "groupBy", f"{item!r} is given twice")
        out.append(group)
    if len(out) > MAX_GROUP_BY:
        raise field_error(422, "groupBy", f"at most {MAX_GROUP_BY} fields, got {len(out)}")
    return out


def parse_metric_types(values: list[str] | None) -> list[MetricType]:
    items = _listed(values)
    if not items:
        raise field_error(422, "metricType", "is required (for example GPU_ALLOCATION)")
    known = {m.value: m for m in MetricType}
    out: list[MetricType] = []
    for item in items:
        metric = known.get(item.upper())
        if metric is None:
            raise field_error(422, "metricType", f"{item!r} is not one of {', '.join(known)}")
        if metric not in out:
            out.append(metric)
    return out


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end] in UTC (a time without a zone is taken as UTC)."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise field_error(422, "end", "must be after start")
    return start, end


def refused(error: QueryError) -> ApiError:
    field = {"telemetryType": "telemetryType", "groupBy": "groupBy",
             "metricTypes": "metricType", "numberOfSamples": "numberOfSamples"}.get(
        error.field.split(".")[0], error.field)
    return field_error(422, field, error.message)
