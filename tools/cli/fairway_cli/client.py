"""Finding the Fairway API and its token, and calling it."""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from fairway_cli import config

# Exit codes: 1 the API refused or failed (bad input, not found, conflict; the message names
# the field), 2 a usage error (typer's), 3 not logged in or not allowed, 4 the API is
# unreachable.
FAILED = INVALID = NOT_FOUND = 1
DENIED = 3
UNREACHABLE = 4


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = FAILED):
        super().__init__(message)
        self.exit_code = exit_code


def state_dir() -> Path:
    return Path(os.environ.get("FAIRWAY_STATE_DIR", ".fairway"))


def api_url() -> str:
    """FAIRWAY_API_URL, else the logged-in one (config), else the local stack's
    (.fairway/stack.json), else 127.0.0.1:8080."""
    if url := os.environ.get("FAIRWAY_API_URL"):
        return url.rstrip("/")
    if url := config.load().get("apiUrl"):
        return url.rstrip("/")
    stack = state_dir() / "stack.json"
    if stack.exists():
        try:
            data = json.loads(stack.read_text())
            url = data.get("api_url") or data.get("apiUrl")
            if url:
                return url.rstrip("/")
        except ValueError:
            pass
    port = os.environ.get("FAIRWAY_API_PORT", "8080")
    return f"http://127.0.0.1:{port}"


def token() -> str:
    """FAIRWAY_TOKEN, else the token of `fairway login`, else the local stack's admin token."""
    if tok := os.environ.get("FAIRWAY_TOKEN"):
        return tok
    if tok := config.load().get("token"):
        return tok
    path = state_dir() / "admin-token"
    if path.exists():
        return path.read_text().strip()
    raise CliError("not logged in: run `fairway login` (or start the stack with `make up`, "
                   "which writes .fairway/admin-token)", DENIED)


def _exit_code(status: int) -> int:
    if status == 404:
        return NOT_FOUND
    if status in (401, 403):
        return DENIED
    if status in (400, 409, 422):
        return INVALID
    return FAILED


def _refusal(response: httpx.Response) -> CliError:
    """The API's error answer as the CLI says it: the message, one line per named field."""
    try:
        body = response.json()
        message = body.get("message", response.text)
        details = body.get("details") or []
    except ValueError:
        message, details = response.text, []
    named = [d for d in details if d.get("field")]
    if len(named) > 1:  # one line per field
        lines = [f"{response.status_code}: {message.split(': ')[0]}"]
        lines += [f"  {d['field']}: {d.get('reason')}" for d in named]
    else:
        lines = [f"{response.status_code}: {message}"]
    if response.status_code == 401:
        lines.append("  (log in again with `fairway login`)")
    return CliError("\n".join(lines), _exit_code(response.status_code))


class Api:
    def __init__(self, *, authenticated: bool = True, base: str | None = None) -> None:
        self.base = (base or api_url()).rstrip("/")
        headers = {"Authorization": f"Bearer {token()}"} if authenticated else {}
        self.http = httpx.Client(base_url=self.base, timeout=15.0, headers=headers)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError:
            raise self._unreachable() from None
        if response.status_code >= 400:
            raise _refusal(response)
        return response.json() if response.content else None

    def stream_text(self, path: str, params: dict[str, Any], *, wait: bool = False
                    ) -> Iterator[bytes]:
        """GET a text answer piece by piece as it comes (a pod's log); `wait`: no read
        time-out, for an answer that keeps coming until the server ends it."""
        timeout = httpx.Timeout(15.0, read=None) if wait else self.http.timeout
        try:
            with self.http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _refusal(response)
                yield from response.iter_raw()
        except httpx.TransportError:
            raise self._unreachable() from None

    def _unreachable(self) -> CliError:
        return CliError(f"cannot reach the Fairway API at {self.base}; is `make up` running?",
                        UNREACHABLE)

    def projects(self) -> list[dict[str, Any]]:
        return self.call("GET", "/api/v1/org-unit/projects")["projects"]

    def project_id(self, name_or_id: str | None) -> str:
        if name_or_id is None:
            name_or_id = config.load().get("project")
            if name_or_id is None:
                raise CliError("no project: pass --project or choose one with "
                               "`fairway project set NAME`", INVALID)
        projects = self.projects()
        for p in projects:
            if name_or_id in (p["name"], p["id"]):
                return p["id"]
        names = ", ".join(p["name"] for p in projects) or "none"
        raise CliError(f"no project {name_or_id!r}; projects: {names}", NOT_FOUND)

    def find_workload(self, name_or_id: str, project: str | None = None) -> dict[str, Any]:
        if len(name_or_id) == 36 and name_or_id.count("-") == 4:
            return self.call("GET", f"/api/v1/workloads/{name_or_id}")
        filters = f"name=={name_or_id}" + (f",projectName=={project}" if project else "")
        found = self.call("GET", "/api/v1/workloads",
                          params={"filterBy": filters, "limit": 10})["workloads"]
        if not found:
            raise CliError(f"no workload named {name_or_id!r}", NOT_FOUND)
        if len(found) > 1:
            projects = ", ".join(w["projectName"] for w in found)
            raise CliError(f"{name_or_id!r} exists in several projects ({projects}); "
                           "pass --project or use the workload id", INVALID)
        return found[0]
