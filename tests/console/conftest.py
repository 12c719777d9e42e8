"""The console's tests run the whole platform as the end-to-end tests do (the same helpers),
and drive it with Debian's Chromium through Playwright."""

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator

import httpx
import pytest

from fairway_devstack.testing import running_stack
from tests.e2e.conftest import admin_client, create, ensure_simulated_pools

CHROMIUM = ("chromium", "chromium-browser")


def chromium_path() -> str:
    """Debian's chromium (`make test` installs it when root, as it does promtool); a missing
    one skips the browser tests with the reason, and fails them under CI=true."""
    for name in CHROMIUM:
        if path := shutil.which(name):
            return path
    message = "chromium not found (Debian: apt-get install chromium; `make test` does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    """A whole platform (kubesim, NATS, PostgreSQL, the five services), started with the
    helper the end-to-end tests use and stopped when the console's tests end, so the rest of
    the suite does not run beside a second platform."""
    with running_stack(tmp_path_factory.mktemp("console-stack"),
                       kubesim_args=("--admin",)) as platform:
        yield platform


@pytest.fixture(scope="package")
def api(stack):
    with admin_client(stack) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    # Module-scoped: Playwright's sync API runs an event loop in this thread while it is
    # open, and the async tests that come after the browser tests need the thread's loop.
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="package")
def pools(api):
    ensure_simulated_pools(api)


@pytest.fixture(scope="package")
def admin_user(api) -> tuple[str, str]:
    """A System administrator with a password the tests know."""
    return make_user(api, "System administrator", "cluster", None)


def make_user(api, role: str, scope_type: str, scope_id: str | None) -> tuple[str, str]:
    name, password = f"u-{uuid.uuid4().hex[:8]}", "console-password-1"
    response = api.post("/api/v1/users", json={"username": name, "password": password})
    assert response.status_code == 201, response.text
    response = api.post("/api/v1/authorization/access-rules", json={
        "subjectType": "user", "subjectId": name, "roleName": role, "scopeType": scope_type,
        **({"scopeId": scope_id} if scope_id else {})})
    assert response.status_code == 201, response.text
    return name, password


def make_project(api, name: str, resources: list | None = None) -> str:
    departments = api.get("/api/v1/org-unit/departments").json()["departments"]
    department = next(d["id"] for d in departments if d["name"] == "default")
    return create(api, "/api/v1/org-unit/projects", {
        "name": f"{name}-{uuid.uuid4().hex[:4]}", "parentId": department,
        "resources": resources or []})["id"]


@contextlib.contextmanager
def signed_in(browser, stack, user: tuple[str, str]) -> Iterator:
    """A page of a fresh browser context, signed in through the sign-in form."""
    context = browser.new_context(base_url=stack.api_url,
                                  viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto("/")
        page.get_by_label("User name").fill(user[0])
        page.get_by_label("Password").fill(user[1])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/")
        yield page
    finally:
        context.close()


def console_client(stack) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, timeout=30, follow_redirects=False)
