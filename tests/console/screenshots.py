"""`make screenshots`: the console's pages as PNG files in docs/console/, taken from a whole
platform started for the purpose (kubesim, embedded NATS and PostgreSQL) with a few workloads
seeded in each state, in headless Chromium at 1366x768.

    .venv/bin/python -m tests.console.screenshots [--out docs/console]
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from fairway_devstack.testing import running_stack
from tests.e2e.conftest import ensure_simulated_pools, submit

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "ada", "screenshot-password"
RUN = "sim.fairway.io/run-seconds"


def seed(api: httpx.Client) -> dict[str, str]:
    """A department with two projects and quotas, a researcher, and workloads that completed,
    run, wait (over their project's limit), were stopped and were refused by policy."""
    ensure_simulated_pools(api)
    department = api.post("/api/v1/org-unit/departments", json={
        "name": "research", "resources": [
            {"nodePool": {"name": "a100"}, "gpu": {"deserved": 8, "overQuotaWeight": 2}},
            {"nodePool": {"name": "t4"}, "gpu": {"deserved": 4}}]}).json()["id"]
    projects = {}
    for name, a100, limit, t4 in (("vision", 6, None, 2), ("speech", 2, 2, 2)):
        projects[name] = api.post("/api/v1/org-unit/projects", json={
            "name": name, "parentId": department, "resources": [
                {"nodePool": {"name": "a100"}, "gpu": {"deserved": a100, "limit": limit}},
                {"nodePool": {"name": "t4"}, "gpu": {"deserved": t4}}]}).json()["id"]
    api.post("/api/v1/users", json={"username": USER, "password": PASSWORD})
    api.post("/api/v1/authorization/access-rules", json={
        "subjectType": "user", "subjectId": USER, "roleName": "Department administrator",
        "scopeType": "department", "scopeId": department})
    api.put("/api/v2/policy/trainings", json={
        "meta": {"scope": "department", "departmentId": department},
        "policy": {"defaults": {"backoffLimit": 2, "image": "pytorch/pytorch:2.5"},
                   "rules": {"compute": {"gpuDevicesRequest": {"max": 4}}}}})
    ids = {"done": submit(api, "trainings", projects["vision"], "resnet-sweep-1",
                          {RUN: "2"}, nodePools=["a100"]),
           "running": submit(api, "trainings", projects["vision"], "vit-pretrain",
                             {RUN: "3600"}, nodePools=["a100"],
                             compute={"gpuDevicesRequest": 4}),
           "notebook": submit(api, "workspaces", projects["vision"], "jupyter-ada",
                              nodePools=["t4"], compute={"gpuDevicesRequest": 1,
                                                         "gpuPortionRequest": 0.5}),
           "waiting": submit(api, "trainings", projects["speech"], "whisper-finetune",
                             {RUN: "3600"}, nodePools=["a100"],
                             compute={"gpuDevicesRequest": 3}),
           "stopped": submit(api, "trainings", projects["speech"], "asr-eval",
                             {RUN: "3600"}, nodePools=["t4"])}
    deadline = time.monotonic() + 60
    while api.get(f"/api/v1/workloads/{ids['stopped']}").json()["phase"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    api.post(f"/api/v1/workloads/trainings/{ids['stopped']}/suspend")
    while api.get(f"/api/v1/workloads/{ids['done']}").json()["phase"] != "Completed" or \
            api.get(f"/api/v1/workloads/{ids['stopped']}").json()["phase"] != "Stopped":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    time.sleep(3)  # a few telemetry samples for the charts
    return {**ids, "vision": projects["vision"]}


def capture(base_url: str, out: Path, ids: dict[str, str]) -> list[Path]:
    shots = [("overview", "/"), ("workloads", "/workloads"),
             ("workload", f"/workloads/{ids['waiting']}"),
             ("submit", f"/submit?type=trainings&projectId={ids['vision']}"),
             ("organisation", "/organisation"), ("nodes", "/nodes"),
             ("charts", "/charts?scope=nodepool&id=a100&window=15m")]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium (`make chromium`)")
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(base_url=base_url, viewport={"width": 1366, "height": 768})
        page.goto("/sign-in")
        page.get_by_label("User name").fill(USER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/")
        for name, path in shots:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            if name == "submit":  # a refusal next to its field
                page.get_by_label("Name", exact=True).fill("too-big")
                page.get_by_label("GPU devices").fill("8")
                page.get_by_role("button", name="Submit training").click()
                page.wait_for_selector("#err-gpuDevicesRequest")
            target = out / f"{name}.png"
            page.screenshot(path=str(target))
            written.append(target)
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fairway-screenshots-") as state, \
            running_stack(Path(state), kubesim_args=("--admin",)) as stack:
        token = Path(stack.admin_token_file).read_text().strip()
        with httpx.Client(base_url=stack.api_url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as api:
            ids = seed(api)
        for path in capture(stack.api_url, args.out, ids):
            print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
