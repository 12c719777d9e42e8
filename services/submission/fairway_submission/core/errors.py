"""The API's one error: a status code, a message and each problem's field path. Raised by the
core's checks and the routes; the app turns it into JSON {code, message, details}."""

from typing import Any

Problems = list[dict[str, str]]


class ApiError(Exception):
    def __init__(self, code: int, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


def field_error(code: int, field: str, reason: str) -> ApiError:
    return ApiError(code, f"{field}: {reason}", [{"field": field, "reason": reason}])


def summary(problems: Problems, at_most: int | None = 5) -> str:
    """`field: reason; field: reason` of the first problems."""
    return "; ".join(f"{p['field']}: {p['reason']}" for p in problems[:at_most])


def refuse(problems: Problems, code: int = 422, message: str = "") -> None:
    """Raise every problem at once (the message names the first five), if there is any."""
    if problems:
        raise ApiError(code, message + summary(problems), problems)
