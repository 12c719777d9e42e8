"""Every error is JSON {code, message, details}, with each problem's field path: the app's
exception handlers."""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fairway_submission.core.errors import ApiError

log = logging.getLogger("fairway.submission")


def _path(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_details(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's errors as the API's problems: each with its field path and reason."""
    details = []
    for err in errors:
        reason = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "missing":
            reason = "is required"
        elif err.get("type") == "extra_forbidden":
            reason = "is not a known field"
        details.append({"field": _path(tuple(err.get("loc", ()))), "reason": reason})
    return details


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "message": exc.message, "details": exc.details},
                            status_code=exc.code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(exc.errors())
        summary = "; ".join(f"{d['field']}: {d['reason']}" for d in details[:5])
        return JSONResponse({"code": 422, "message": f"invalid request: {summary}",
                             "details": details}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"code": exc.status_code, "message": str(exc.detail), "details": []},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(asyncpg.exceptions.DataError)
    async def unstorable(_: Request, exc: asyncpg.exceptions.DataError) -> JSONResponse:
        # A value the database cannot hold (a NUL character, a number out of range): the
        # client's input, so 400, never a 500.
        return JSONResponse({"code": 400, "message": "a value in the request cannot be stored "
                             f"({type(exc).__name__})", "details": []}, status_code=400)

    @app.exception_handler(asyncpg.exceptions.PostgresConnectionError)
    @app.exception_handler(asyncpg.exceptions.OperatorInterventionError)
    @app.exception_handler(asyncpg.exceptions.TooManyConnectionsError)
    @app.exception_handler(asyncpg.exceptions.InterfaceError)
    @app.exception_handler(asyncpg.exceptions.InternalClientError)
    @app.exception_handler(OSError)
    async def database_away(_: Request, exc: Exception) -> JSONResponse:
        # The database restarting or failing over (its connections broken, refused, or in a
        # state a broken connection leaves): the request can be tried again in a moment, so
        # 503 with Retry-After, never a 500. Nothing was half-written: each request's writes
        # are one statement or one transaction.
        log.warning("database not reachable: %r", exc)
        return JSONResponse({"code": 503, "message": "the database is not reachable; try again "
                             "shortly", "details": []}, status_code=503,
                            headers={"Retry-After": "2"})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"code": 500, "message": "internal error", "details": []},
                            status_code=500)
