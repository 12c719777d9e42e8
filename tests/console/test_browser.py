"""The console in a real headless Chromium against the whole platform: signing in, submitting
through the form and watching the phase change live, a policy refusal next to its field, a
waiting workload's reason, what a researcher sees, stop and run from the table, and the
overview's figures against the API's."""

import re
import time

from playwright.sync_api import expect

from tests.console.conftest import make_project, make_user, signed_in
from tests.e2e.conftest import submit

RUN_SECONDS = "sim.fairway.io/run-seconds"


def test_signing_in_shows_the_overview_and_signing_out_returns_to_the_form(
        browser, stack, admin_user):
    with signed_in(browser, stack, admin_user) as page:
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.get_by_test_id("subject")).to_have_text(admin_user[0])
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/sign-in")
        page.goto("/workloads")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_wrong_password_is_refused_on_the_form(browser, stack, admin_user):
    context = browser.new_context(base_url=stack.api_url)
    page = context.new_page()
    page.goto("/sign-in")
    page.get_by_label("User name").fill(admin_user[0])
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("wrong username or password")
    context.close()


def test_a_training_submitted_through_the_form_reaches_completed_without_a_reload(
        browser, stack, api, admin_user, pools):
    project = make_project(api, "form")
    with signed_in(browser, stack, admin_user) as page:
        page.goto(f"/submit?type=trainings&projectId={project}")
        page.get_by_label("Name", exact=True).fill("from-the-form")
        page.get_by_label("Image").fill("busybox")
        page.get_by_label("GPU devices").fill("1")
        page.get_by_label("Annotations").fill(f"{RUN_SECONDS}=4")
        page.get_by_role("button", name="Submit training").click()
        page.wait_for_url(re.compile(r"/workloads/[0-9a-f-]{36}$"))
        workload_id = page.url.rsplit("/", 1)[1]
        page.goto(f"/workloads?project={api.get(f'/api/v1/org-unit/projects/{project}').json()['name']}")
        page.evaluate("window.notReloaded = true")
        row = page.locator(f'tr[data-workload-id="{workload_id}"]')
        expect(row.locator("[data-phase]")).to_have_text("Completed", timeout=90_000)
        assert page.evaluate("window.notReloaded") is True
    assert api.get(f"/api/v1/workloads/{workload_id}").json()["phase"] == "Completed"


def test_a_policy_refusal_is_shown_next_to_its_field(browser, stack, api, admin_user):
    project, unruled = make_project(api, "policy"), make_project(api, "unruled")
    response = api.put("/api/v2/policy/trainings", json={
        "meta": {"scope": "project", "projectId": project},
        "policy": {"defaults": {"image": "busybox"},
                   "rules": {"compute": {"gpuDevicesRequest": {"max": 2}},
                             "command": {"canEdit": False}}}})
    assert response.status_code == 200, response.text
    with signed_in(browser, stack, admin_user) as page:
        page.goto(f"/submit?type=trainings&projectId={project}")
        # the project's effective policy: a default filled in, a limit shown, a lock kept
        expect(page.locator("#help-gpuDevicesRequest")).to_contain_text("At most 2")
        expect(page.get_by_label("Image")).to_have_value("busybox")
        expect(page.locator("#command")).to_have_attribute("readonly", "")
        # another project, another policy: the form follows the choice in place
        page.select_option("#projectId", unruled)
        expect(page.get_by_label("Image")).to_have_value("")
        expect(page.locator("#command")).not_to_have_attribute("readonly", "")
        page.select_option("#projectId", project)
        expect(page.get_by_label("Image")).to_have_value("busybox")
        page.get_by_label("Name", exact=True).fill("too-big")
        page.get_by_label("GPU devices").fill("4")
        page.get_by_role("button", name="Submit training").click()
        error = page.locator("#err-gpuDevicesRequest")
        expect(error).to_contain_text("above the maximum of 2")
        # the value stays as typed, for the user to correct
        expect(page.get_by_label("GPU devices")).to_have_value("4")
    listed = api.get("/api/v1/workloads", params={"filterBy": f"projectId=={project}"}).json()
    assert listed["totalCount"] == 0


def test_a_waiting_workload_shows_why_it_waits(browser, stack, api, admin_user, pools):
    project = make_project(api, "capped", [
        {"nodePool": {"name": "a100"}, "gpu": {"deserved": 0, "limit": 1}}])
    workload_id = submit(api, "trainings", project, "waits", nodePools=["a100"],
                         compute={"gpuDevicesRequest": 2})
    deadline = time.monotonic() + 60
    while not (shown := api.get(f"/api/v1/workloads/{workload_id}").json())["phaseReason"] \
            == "OverLimit":
        assert time.monotonic() < deadline, shown
        time.sleep(0.3)
    with signed_in(browser, stack, admin_user) as page:
        page.goto(f"/workloads/{workload_id}")
        expect(page.locator("#pending-reason")).to_contain_text(shown["phaseMessage"])
        page.goto(f"/workloads?name=waits&project={shown['projectName']}")
        expect(page.locator(f'tr[data-workload-id="{workload_id}"] [data-reason]')).to_have_text(
            shown["phaseMessage"])
    api.delete(f"/api/v1/workloads/trainings/{workload_id}")


def test_a_researcher_sees_only_their_project(browser, stack, api, pools):
    mine, theirs = make_project(api, "mine"), make_project(api, "theirs")
    own = submit(api, "trainings", mine, "own", annotations={RUN_SECONDS: "600"},
                 compute={"gpuDevicesRequest": 0})
    other = submit(api, "trainings", theirs, "other", annotations={RUN_SECONDS: "600"},
                   compute={"gpuDevicesRequest": 0})
    researcher = make_user(api, "L1 researcher", "project", mine)
    mine_name = api.get(f"/api/v1/org-unit/projects/{mine}").json()["name"]
    with signed_in(browser, stack, researcher) as page:
        page.goto("/workloads")
        rows = page.locator("tr[data-workload-id]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-workload-id", own)
        options = page.locator("#f-project option").all_inner_texts()
        assert options == ["all", mine_name]
        response = page.goto(f"/workloads/{other}")
        assert response is not None and response.status == 404
        page.goto("/submit")
        assert page.locator("#projectId option").all_inner_texts() == [mine_name]
    for wid in (own, other):
        api.delete(f"/api/v1/workloads/trainings/{wid}")


def test_stop_and_run_from_the_table(browser, stack, api, admin_user, pools):
    project = make_project(api, "actions")
    name = api.get(f"/api/v1/org-unit/projects/{project}").json()["name"]
    first = submit(api, "trainings", project, "first", annotations={RUN_SECONDS: "600"},
                   compute={"gpuDevicesRequest": 0})
    second = submit(api, "trainings", project, "second", annotations={RUN_SECONDS: "600"},
                    compute={"gpuDevicesRequest": 0})
    with signed_in(browser, stack, admin_user) as page:
        page.goto(f"/workloads?project={name}")
        phase = {wid: page.locator(f'tr[data-workload-id="{wid}"] [data-phase]')
                 for wid in (first, second)}
        for wid in (first, second):
            expect(phase[wid]).to_have_text("Running", timeout=60_000)
        # one row's own button
        page.get_by_role("button", name="Stop first").click()
        expect(page.locator("#message")).to_contain_text("stop: 1 accepted")
        expect(phase[first]).to_have_text("Stopped", timeout=60_000)
        expect(phase[second]).to_have_text("Running")
        page.get_by_role("button", name="Run first").click()
        expect(phase[first]).to_have_text("Running", timeout=60_000)
        # several at once
        page.get_by_label("Tick first").check()
        page.get_by_label("Tick second").check()
        page.get_by_role("button", name="Stop ticked").click()
        expect(page.locator("#message")).to_contain_text("stop: 2 accepted")
        for wid in (first, second):
            expect(phase[wid]).to_have_text("Stopped", timeout=60_000)
    for wid in (first, second):
        assert api.get(f"/api/v1/workloads/{wid}").json()["desiredPhase"] == "Stopped"
        api.delete(f"/api/v1/workloads/trainings/{wid}")


def _overview(page) -> dict:
    figures = {}
    for row in page.locator("#gpu-table [data-pool]").all():
        pool = row.get_attribute("data-pool")
        figures[pool] = {cell.get_attribute("data-figure"): float(cell.inner_text())
                         for cell in row.locator("[data-figure]").all()}
    phases = {row.get_attribute("data-phase-count"): int(row.locator("td").inner_text())
              for row in page.locator("[data-phase-count]").all()}
    return {"gpus": figures, "phases": phases}


def _from_api(api) -> dict:
    nodes = api.get("/api/v1/nodes").json()["nodes"]
    figures: dict[str, dict[str, float]] = {}
    for node in nodes:
        for pool in (node["nodePool"], "*"):
            f = figures.setdefault(pool, {"gpus": 0, "allocated": 0})
            f["gpus"] += node["gpus"]
            f["allocated"] += node["allocatedGpus"]
    for f in figures.values():
        f["idle"] = max(f["gpus"] - f["allocated"], 0)
    phases = {}
    for phase in ("Pending", "Creating", "Initializing", "Running", "Degraded", "Resuming",
                  "Stopping", "Stopped", "Completed", "Failed", "Deleting", "Deleted"):
        total = api.get("/api/v1/workloads", params={
            "filterBy": f"phase=={phase}", "limit": 1}).json()["totalCount"]
        if total:
            phases[phase] = total
    return {"gpus": figures, "phases": phases}


def test_the_overview_figures_equal_the_apis(browser, stack, api, admin_user, pools):
    with signed_in(browser, stack, admin_user) as page:
        # Workloads of other tests may be moving: the two reads must agree once, read back
        # to back with the API read on both sides.
        deadline = time.monotonic() + 60
        while True:
            before = _from_api(api)
            page.goto("/")
            shown = _overview(page)
            after = _from_api(api)
            if before == after:
                got = {"gpus": {pool: {k: v for k, v in f.items() if k != "shared"}
                                for pool, f in shown["gpus"].items()},
                       "phases": shown["phases"]}
                if got == before:
                    break
            assert time.monotonic() < deadline, (shown, before, after)
            time.sleep(0.5)
        assert before["gpus"]["*"]["gpus"] > 0
        # earlier tests' workloads were placed: the scheduler announced its cycles
        expect(page.locator("#last-cycle")).to_contain_text("Ended")


def test_an_administrator_creates_and_edits_a_project_quota_and_sees_refusals_by_field(
        browser, stack, api, admin_user, pools):
    name = f"org-{int(time.time() * 1000) % 10**8}"
    with signed_in(browser, stack, admin_user) as page:
        page.goto("/organisation")
        page.get_by_role("link", name="New project").click()
        page.get_by_label("Name").fill(name)
        page.get_by_label("Deserved GPUs in a100").fill("-1")
        page.get_by_role("button", name="Save project").click()
        expect(page.locator("#err-gpu-a100-deserved")).to_have_text("must not be negative")
        page.get_by_label("Deserved GPUs in a100").fill("2")
        page.get_by_label("Over-quota weight in a100").fill("3")
        page.get_by_role("button", name="Save project").click()
        expect(page.locator("#message")).to_have_text(f"project {name} saved")
        page.get_by_role("link", name=f"Edit project {name}").click()
        expect(page.get_by_label("Deserved GPUs in a100")).to_have_value("2")
        page.get_by_label("Limit (empty: none) in a100").fill("4")
        page.get_by_role("button", name="Save project").click()
        expect(page.locator("#message")).to_have_text(f"project {name} saved")
    project = next(p for p in api.get("/api/v1/org-unit/projects").json()["projects"]
                   if p["name"] == name)
    [quota] = project["resources"]
    assert quota["nodePool"]["name"] == "a100"
    assert (quota["gpu"]["deserved"], quota["gpu"]["limit"],
            quota["gpu"]["overQuotaWeight"]) == (2, 4, 3)


def test_a_running_workloads_page_shows_its_pod_its_events_and_log(browser, stack, api,
                                                                   admin_user, pools):
    project = make_project(api, "logs")
    workload_id = submit(api, "trainings", project, "talks", nodePools=["t4"], annotations={
        RUN_SECONDS: "600", "sim.fairway.io/log": "hello from the console"})
    with signed_in(browser, stack, admin_user) as page:
        page.goto(f"/workloads/{workload_id}")
        # the page follows the phase live, then its pods table and history are re-read
        expect(page.locator("#detail [data-phase]")).to_have_text("Running", timeout=60_000)
        pod = api.get(f"/api/v1/workloads/{workload_id}/pods").json()["pods"][0]
        expect(page.get_by_role("cell", name=pod["node"], exact=True)).to_be_visible()
        expect(page.locator("#history")).to_contain_text("Running")
        page.reload()  # what Kubernetes recorded about the pod, read from the cluster
        expect(page.locator("#kube-events")).to_contain_text("Scheduled")
        expect(page.locator("#kube-events")).to_contain_text("Started")
        deadline = time.monotonic() + 30
        while "hello from the console" not in page.content():
            assert time.monotonic() < deadline, page.content()
            page.goto(f"/workloads/{workload_id}")
            page.get_by_role("link", name="last lines").click()
            time.sleep(0.5)
    api.delete(f"/api/v1/workloads/trainings/{workload_id}")


def test_with_time_aware_fairness_on_the_organisation_shows_usage_and_the_adjusted_weight(
        browser, stack, api, admin_user, pools):
    t4 = next(p for p in api.get("/api/v1/node-pools").json()["nodePools"] if p["name"] == "t4")
    on = api.put(f"/api/v1/node-pools/{t4['id']}", json={"schedulingConfiguration": {
        "timeAwareFairness": {"enabled": True, "windowType": "sliding", "windowSize": "7d",
                              "halfLifePeriod": "0s", "kValue": 1}}})
    assert on.status_code == 200, on.text
    project = make_project(api, "usage", [{"nodePool": {"name": "t4"}, "gpu": {"deserved": 0}}])
    name = api.get(f"/api/v1/org-unit/projects/{project}").json()["name"]
    workload_id = submit(api, "trainings", project, "uses", nodePools=["t4"],
                         annotations={RUN_SECONDS: "600"})
    try:
        with signed_in(browser, stack, admin_user) as page:
            row = page.locator(f'tr[data-unit="project/{name}"][data-pool="t4"]')
            deadline = time.monotonic() + 120
            while True:  # the scheduler accrues what the project held at its next cycles
                page.goto("/organisation")
                usage = row.locator('[data-figure="usage"]')
                if usage.count() and usage.inner_text() not in ("—", "0"):
                    break
                assert time.monotonic() < deadline, row.inner_text()
                time.sleep(2)
            expect(page.get_by_role("columnheader", name="Usage (GPU-h)").first).to_be_visible()
            expect(page.get_by_role("columnheader", name="Adjusted weight").first).to_be_visible()
            for _ in range(5):  # the page and the API read back to back agree once
                shown = row.locator('[data-figure="adjusted"]').inner_text()
                status = next(s for s in api.get(f"/api/v1/org-unit/projects/{project}").json()[
                    "status"]["nodePoolResources"] if s["nodePool"]["name"] == "t4")
                weight = (status.get("adjustedOverQuotaWeight") or {}).get("gpu")
                if shown == ("—" if weight is None else f"{weight:g}"):
                    break
                page.goto("/organisation")
            else:
                raise AssertionError((shown, status))
            assert status["usage"]["gpu"] > 0
    finally:
        api.delete(f"/api/v1/workloads/trainings/{workload_id}")
        off = api.put(f"/api/v1/node-pools/{t4['id']}",
                      json={"schedulingConfiguration": {"timeAwareFairness": None}})
        assert off.status_code == 200, off.text


# Every control a user can reach, with no name a screen reader would say: what it is and why.
UNNAMED = """() => [...document.querySelectorAll('a[href], button, input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.getClientRects().length)
  .filter(el => {
    const named = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    if (['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName)) return !(named || el.labels.length);
    return !(named || el.textContent.trim() || el.title);
  })
  .map(el => el.outerHTML.slice(0, 120))"""


def focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")


def test_signing_in_and_moving_about_works_from_the_keyboard_and_every_control_is_named(
        browser, stack, api, admin_user, pools):
    project = make_project(api, "keys")
    name = api.get(f"/api/v1/org-unit/projects/{project}").json()["name"]
    waiting = submit(api, "trainings", project, "keyed", nodePools=["a100"],
                     compute={"gpuDevicesRequest": 64})  # more than a node has: it waits
    context = browser.new_context(base_url=stack.api_url, viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto("/sign-in")
        page.keyboard.press("Tab")
        assert focused(page) == "Skip to content"  # the first stop, past the header
        page.keyboard.press("Tab")
        assert focused(page) == "username"
        page.keyboard.type(admin_user[0])
        page.keyboard.press("Tab")
        assert focused(page) == "password"
        page.keyboard.type(admin_user[1])
        page.keyboard.press("Enter")
        page.wait_for_url("**/")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()

        # To the workloads table by its link in the navigation, then a workload, by keys alone.
        page.get_by_role("link", name="Workloads", exact=True).focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/workloads")
        page.get_by_label("Name contains").focus()
        page.keyboard.type("keyed")
        page.wait_for_url("**/workloads?*name=keyed*")  # the filter has been applied
        expect(page.locator(f'tr[data-workload-id="{waiting}"]')).to_be_visible()
        page.get_by_role("link", name="keyed", exact=True).focus()
        # The table is swapped whenever the live feed (re)opens; a focused link keeps its focus.
        page.evaluate("htmx.ajax('GET', location.href,"
                      " {target: '#table', select: '#table', swap: 'outerHTML'})")
        assert focused(page) == f"open-{waiting}"
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/workloads/{waiting}")

        for path in ("/", f"/workloads?project={name}", f"/workloads/{waiting}",
                     f"/submit?type=trainings&projectId={project}", "/organisation",
                     "/organisation/project/new", "/nodes", "/charts"):
            page.goto(path)
            assert page.locator("h1").count() == 1, path
            assert page.evaluate(UNNAMED) == [], path
    finally:
        context.close()
        api.delete(f"/api/v1/workloads/trainings/{waiting}")
