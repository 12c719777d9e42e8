"""Finding the Fairway API and its token, and calling it."""

import json
import os
from pathlib import Path
from typing import Any

import httpx


class CliError(Exception):
    pass


def state_dir() -> Path:
    return Path(os.environ.get("FAIRWAY_STATE_DIR", ".fairway"))


def api_url() -> str:
    """FAIRWAY_API_URL, else the local stack's (.fairway/stack.json), else 127.0.0.1:8080."""
    if url := os.environ.get("FAIRWAY_API_URL"):
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
    if tok := os.environ.get("FAIRWAY_TOKEN"):
        return tok
    path = state_dir() / "admin-token"
    if path.exists():
        return path.read_text().strip()
    raise CliError("no token: start the stack with `make up` (it writes .fairway/admin-token) "
                   "or set FAIRWAY_TOKEN")


class Api:
    def __init__(self) -> None:
        self.base = api_url()
        self.http = httpx.Client(base_url=self.base, timeout=15.0,
                                 headers={"Authorization": f"Bearer {token()}"})

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise CliError(f"cannot reach the Fairway API at {self.base}; is `make up` running?"
                           ) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                message = body.get("message", response.text)
                details = body.get("details") or []
            except ValueError:
                message, details = response.text, []
            lines = [f"{response.status_code}: {message}"]
            lines += [f"  {d.get('field')}: {d.get('reason')}" for d in details
                      if d.get("field") and d.get("reason") not in message]
            raise CliError("\n".join(lines))
        return response.json() if response.content else None

    def project_id(self, name_or_id: str) -> str:
        projects = self.call("GET", "/api/v1/org-unit/projects")["projects"]
        for p in projects:
            if name_or_id in (p["name"], p["id"]):
                return p["id"]
        names = ", ".join(p["name"] for p in projects) or "none"
        raise CliError(f"no project {name_or_id!r}; projects: {names}")

    def find_workload(self, name_or_id: str) -> dict[str, Any]:
        if len(name_or_id) == 36 and name_or_id.count("-") == 4:
            return self.call("GET", f"/api/v1/workloads/{name_or_id}")
        found = self.call("GET", "/api/v1/workloads",
                          params={"filterBy": f"name=={name_or_id}", "limit": 10})["workloads"]
        if not found:
            raise CliError(f"no workload named {name_or_id!r}")
        if len(found) > 1:
            projects = ", ".join(w["projectName"] for w in found)
            raise CliError(f"{name_or_id!r} exists in several projects ({projects}); "
                           "use the workload id")
        return found[0]
