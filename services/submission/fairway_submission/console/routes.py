"""The console's pages: server-rendered HTML over the API's own route functions, so each page
shows exactly what the caller's token may see through the API (one set of access rules)."""

import asyncio
import logging
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from fairway_contracts.workloads import TYPE_OF_PLURAL
from fairway_submission import repository as repo
from fairway_submission.console import charts, forms
from fairway_submission.console.live import BACKLOG, Visible, sse
from fairway_submission.console.session import (
    SignInFirst,
    caller_of,
    forget_token,
    keep_token,
    to_sign_in,
)
from fairway_submission.core.access import Grants, Perm
from fairway_submission.core.errors import ApiError
from fairway_submission.errors import validation_details
from fairway_submission.identity import routes as identity
from fairway_submission.identity.models import TokenRequest
from fairway_submission.org import models as org_models
from fairway_submission.org import nodes as node_routes
from fairway_submission.org import routes as org_routes
from fairway_submission.policies import routes as policy_routes
from fairway_submission.service import SubmissionService
from fairway_submission.telemetry import routes as telemetry_routes
from fairway_submission.workloads import models as workload_models
from fairway_submission.workloads import routes as workload_routes

log = logging.getLogger("fairway.submission.console")

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
PHASES = ("Pending", "Creating", "Initializing", "Running", "Degraded", "Resuming", "Stopping",
          "Stopped", "Completed", "Failed", "Deleting", "Deleted")
SORTABLE = ("name", "projectName", "type", "phase", "createdBy", "createdAt")
ACTIONS = {"stop": "suspend", "run": "resume", "delete": "delete"}
KEEPALIVE_SECONDS = 15.0
CREATE_MODELS = {"workspaces": workload_models.WorkspaceCreate,
                 "trainings": workload_models.TrainingCreate,
                 "distributed": workload_models.DistributedCreate,
                 "inferences": workload_models.InferenceCreate}


class Problem(Exception):
    """An API refusal met on a page: shown as the page's error, with its status code."""

    def __init__(self, error: ApiError):
        self.error = error


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(SignInFirst)
    async def sign_in_first(request: Request, _: SignInFirst) -> Response:
        return to_sign_in(request)

    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> Response:
        return templates.TemplateResponse(request, "problem.html", {
            "user": None, "error": exc.error}, status_code=exc.error.code)


def _service(request: Request) -> SubmissionService:
    return request.app.state.submission


async def _api(call: Any) -> Any:
    """An API function's answer; its refusal becomes the page's error."""
    try:
        return await call
    except ApiError as exc:
        raise Problem(exc) from None


def _page(request: Request, name: str, caller: Grants | None, status: int = 200,
          **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"user": caller, **context},
                                      status_code=status)


async def _form(request: Request) -> dict[str, str]:
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


# sign in and out ------------------------------------------------------------------------

@router.get("/sign-in")
async def sign_in_page(request: Request, next: str = "/") -> HTMLResponse:
    return _page(request, "sign_in.html", None, next=_local(next), error=None, username="")


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await _form(request)
    target = _local(form.get("next", "/"))
    body = TokenRequest(grant_type="password", username=form.get("username") or None,
                        password=form.get("password") or None)
    try:
        issued = await identity.token(body, request, _service(request))
    except ApiError as exc:
        return _page(request, "sign_in.html", None, status=exc.code, next=target,
                     error=exc.message, username=form.get("username", ""))
    response = RedirectResponse(target, status_code=303)
    keep_token(response, issued["accessToken"], issued["expiresIn"],
               secure=request.url.scheme == "https")
    return response


@router.post("/sign-out")
async def sign_out() -> Response:
    response = RedirectResponse("/sign-in", status_code=303)
    forget_token(response)
    return response


def _local(target: str) -> str:
    """Only a path on this site (never `//elsewhere`): where to go after signing in."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


# overview -------------------------------------------------------------------------------

async def overview_figures(service: SubmissionService, caller: Grants) -> dict[str, Any]:
    """GPUs per pool from the API's node list; workloads by phase and waiting ones by reason
    over what the caller may see (the same scope as the API's list)."""
    listed = await _api(node_routes.list_nodes(caller, service))
    async with service.pool.acquire() as conn:
        counts = await repo.workload_counts(conn, workload_routes.visible_scope(caller))
        shared = await repo.shared_devices_by_pool(conn)
    pools: dict[str, dict[str, float]] = defaultdict(lambda: {
        "nodes": 0, "ready": 0, "gpus": 0, "allocated": 0.0})
    for node in listed["nodes"]:
        pool = pools[node["nodePool"]]
        pool["nodes"] += 1
        pool["ready"] += node["ready"]
        pool["gpus"] += node["gpus"]
        pool["allocated"] += node["allocatedGpus"]
    for name, pool in pools.items():
        pool["idle"] = max(pool["gpus"] - pool["allocated"], 0)
        pool["shared"] = shared.get(name, 0)
    cluster = {key: sum(p[key] for p in pools.values())
               for key in ("nodes", "ready", "gpus", "allocated", "idle", "shared")}
    phases: Counter[str] = Counter()
    pending: Counter[str] = Counter()
    for row in counts:
        phases[row["phase"]] += row["workloads"]
        if row["phase"] == "Pending":
            pending[row["reason"] or "Pending"] += row["workloads"]
    return {"pools": dict(sorted(pools.items())), "cluster": cluster,
            "phases": dict(sorted(phases.items(), key=lambda kv: PHASES.index(kv[0])
                                  if kv[0] in PHASES else 99)),
            "pending": dict(pending.most_common()), "cycle": service.last_cycle}


@router.get("/")
async def overview(request: Request) -> HTMLResponse:
    caller = await caller_of(request)
    figures = await overview_figures(_service(request), caller)
    return _page(request, "overview.html", caller, **figures)


# workloads ------------------------------------------------------------------------------

def _filters(query: dict[str, str]) -> str | None:
    parts = []
    if query.get("project"):
        parts.append(f"projectName=={query['project']}")
    if query.get("type") in TYPE_OF_PLURAL.values() or query.get("type") in forms.TYPES.values():
        parts.append(f"type=={query['type']}")
    if query.get("phase") in PHASES:
        parts.append(f"phase=={query['phase']}")
    if query.get("name"):
        # the API's filter splits on commas: a name has none (DNS label)
        parts.append(f"name=@{query['name'].replace(',', '')}")
    return ",".join(parts) or None


async def _visible_projects(service: SubmissionService, caller: Grants) -> list[str]:
    async with service.pool.acquire() as conn:
        projects = await repo.list_projects(conn)
    scope = workload_routes.visible_scope(caller)
    if scope is None:
        return [p["name"] for p in projects]
    ids = set(scope[0]) | set(scope[1])
    return [p["name"] for p in projects if p["id"] in ids]


@router.get("/workloads")
async def workloads(request: Request) -> HTMLResponse:
    caller = await caller_of(request)
    service = _service(request)
    query = dict(request.query_params)
    sort = query.get("sort") if query.get("sort") in SORTABLE else "createdAt"
    order = "asc" if query.get("order") == "asc" else "desc"
    try:
        page = max(int(query.get("page", "1")), 1)
    except ValueError:
        page = 1
    listed = await _api(workload_routes.list_workloads(
        caller, service, filter_by=_filters(query), sort_by=sort, sort_order=order,
        offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE))
    pages = max((listed["totalCount"] + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    kept = {k: v for k, v in query.items() if k in ("project", "type", "phase", "name") and v}

    def link(**change: Any) -> str:
        return "/workloads?" + urlencode({**kept, "sort": sort, "order": order,
                                          "page": page, **change})

    return _page(request, "workloads.html", caller, listed=listed, query=kept, sort=sort,
                 order=order, page=page, pages=pages, link=link, phases=PHASES,
                 types=list(forms.TYPES.values()), message=query.get("message"),
                 projects=await _visible_projects(service, caller),
                 may_manage=_may_manage(caller))


def _may_manage(caller: Grants) -> bool:
    return bool({Perm.WORKLOAD_MANAGE, Perm.INFERENCE_MANAGE} & caller.anywhere())


@router.post("/workloads/actions")
async def workload_actions(request: Request) -> Response:
    """Stop, run or delete the workloads ticked (one or several), each through the API's
    batch action; back to the table saying what happened to each."""
    caller = await caller_of(request)
    pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    action = next((v for k, v in pairs if k == "action"), "")
    ids = [v for k, v in pairs if k == "id" and v]
    row = next((v for k, v in pairs if k == "row"), "")
    if row:  # one row's own button: that workload only
        action, _, one = row.partition(":")
        ids = [one]
    back = _local(next((v for k, v in pairs if k == "back"), "/workloads"))
    if action not in ACTIONS or not ids:
        message = "tick one or more workloads, then choose stop, run or delete"
    else:
        out = await _api(workload_routes.batch(workload_models.BatchIn(
            ids=ids[:500], action=ACTIONS[action]), caller, _service(request)))
        done = sum(1 for r in out["results"] if r["code"] == 202)
        refused = [r["message"] for r in out["results"] if r["code"] != 202]
        message = f"{action}: {done} accepted" + (
            f"; refused: {'; '.join(refused)}" if refused else "")
    separator = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{separator}{urlencode({'message': message})}",
                            status_code=303)


@router.get("/workloads/live")
async def live(request: Request) -> StreamingResponse:
    """Server-sent events: each phase change of a workload the caller may see, as the view
    commits it (see `live`). A browser that falls behind is told to reload."""
    caller = await caller_of(request)
    service = _service(request)
    visible = await _visible_names(service, caller)
    feed = service.phase_feed
    watcher = feed.watch(visible)

    async def events():
        try:
            yield f"retry: 2000\n: watching up to {BACKLOG} changes behind\n\n"
            while not watcher.behind:
                try:
                    yield await asyncio.wait_for(watcher.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    # The token is judged again now and then (remembered, so cheap): an
                    # expired token or a deleted user stops the stream, the page reloads
                    # into the sign-in form.
                    try:
                        await caller_of(request)
                    except (SignInFirst, ApiError):
                        break
                    yield ": keepalive\n\n"
            yield sse("reload", {})
        finally:
            feed.leave(watcher)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _visible_names(service: SubmissionService, caller: Grants) -> Visible:
    if Perm.WORKLOAD_VIEW in caller.at_cluster():
        return Visible(everything=True)
    async with service.pool.acquire() as conn:
        names = {str(p["id"]): p["name"] for p in await repo.list_projects(conn)}
    every, inference = caller.workload_scopes(names)
    return Visible(False, frozenset(names[p] for p in every),
                   frozenset(names[p] for p in inference))


@router.get("/workloads/{workload_id}")
async def workload(request: Request, workload_id: str) -> HTMLResponse:
    caller = await caller_of(request)
    service = _service(request)
    shown = await _api(workload_routes.get_workload(workload_id, caller, service))
    history = await _api(workload_routes.workload_events(workload_id, caller, service))
    pods = await _api(workload_routes.workload_pods(workload_id, caller, service))
    # Read from the cluster: the page is still worth showing when it cannot be asked.
    kube_events, kube_problem = [], None
    try:
        kube_events = (await workload_routes.workload_kubernetes_events(
            workload_id, caller, service))["events"]
    except ApiError as exc:
        kube_problem = exc.message
    return _page(request, "workload.html", caller, w=shown, history=history["events"],
                 pods=pods["pods"], may_manage=_may_manage(caller),
                 kube_events=kube_events[-50:], kube_problem=kube_problem,
                 message=request.query_params.get("message"))


@router.get("/workloads/{workload_id}/pods/{pod}/log")
async def pod_log(request: Request, workload_id: str, pod: str) -> Response:
    """The pod's last lines, as the API's log route reads them."""
    caller = await caller_of(request)
    return await _api(workload_routes.pod_logs(
        workload_id, pod, caller, _service(request), follow=False, tail_lines=500,
        since_seconds=None, container=None, previous=False, timestamps=False))


# submit ---------------------------------------------------------------------------------

async def _projects_for_submit(service: SubmissionService, caller: Grants
                               ) -> list[dict[str, str]]:
    async with service.pool.acquire() as conn:
        projects = await repo.list_projects(conn)
    return [{"id": str(p["id"]), "name": p["name"]} for p in projects
            if {Perm.WORKLOAD_CREATE, Perm.INFERENCE_CREATE}
            & caller.perms_at(project_id=str(p["id"]))]


async def _effective_policy(service: SubmissionService, caller: Grants, plural: str,
                            project_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """The project's effective policy for the form, and why it is missing when the policy
    service could not say (asked twice: a busy moment is not worth a form without it)."""
    if not project_id:
        return None, None
    for attempt in range(2):
        try:
            out = await policy_routes.get_policy(plural, caller, service, scope="project",
                                                 department_id=None, project_id=project_id)
            return out.get("effective"), None
        except ApiError as exc:
            log.info("no effective policy for the form: %s", exc.message)
            if exc.code != 503:
                return None, None  # the caller may not read it: the form goes without
            if attempt:
                return None, exc.message
    return None, None


@router.get("/submit")
async def submit_page(request: Request, type: str = "trainings", projectId: str = ""
                      ) -> HTMLResponse:
    caller = await caller_of(request)
    return await _submit_form(request, caller, type, {"projectId": projectId}, [])


async def _submit_form(request: Request, caller: Grants, plural: str, values: dict[str, str],
                       problems: list[dict[str, str]], status: int = 200,
                       message: str = "") -> HTMLResponse:
    service = _service(request)
    plural = plural if plural in forms.TYPES else "trainings"
    projects = await _projects_for_submit(service, caller)
    if not values.get("projectId") and projects:
        values["projectId"] = projects[0]["id"]
    effective, policy_problem = await _effective_policy(service, caller, plural,
                                                        values.get("projectId", ""))
    hints = forms.policy_hints(effective, plural)
    by_field: dict[str, list[str]] = defaultdict(list)
    for p in problems:
        by_field[forms.field_for(p["field"], plural)].append(
            f"{p['field']}: {p['reason']}" if forms.field_for(p["field"], plural) == ""
            else p["reason"])
    return _page(request, "submit.html", caller, status=status, plural=plural,
                 types=forms.TYPES, fields=forms.fields_of(plural), values=values,
                 projects=projects, hints=hints, errors=by_field, message=message,
                 policy_problem=policy_problem)


@router.post("/submit")
async def submit(request: Request) -> Response:
    """The form as the API's request, through the API's own submission: its refusals come
    back field by field and are shown next to their inputs."""
    caller = await caller_of(request)
    form = await _form(request)
    plural = form.get("type", "trainings")
    if plural not in forms.TYPES:
        plural = "trainings"
    body = forms.request_body(plural, form)
    try:
        parsed = CREATE_MODELS[plural].model_validate(body)
    except ValidationError as exc:
        return await _submit_form(request, caller, plural, form,
                                  validation_details(exc.errors()), status=422,
                                  message="the workload was not submitted")
    try:
        answer = await workload_routes.submit(_service(request), TYPE_OF_PLURAL[plural],
                                              parsed, caller)
    except ApiError as exc:
        problems = exc.details or [{"field": "", "reason": exc.message}]
        return await _submit_form(request, caller, plural, form, problems, status=exc.code,
                                  message=exc.message)
    created = answer.body.decode()
    workload_id = workload_models.Workload.model_validate_json(created).workload_id
    return RedirectResponse(f"/workloads/{workload_id}", status_code=303)


# charts ---------------------------------------------------------------------------------

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
CHART_SAMPLES = 60


def _series_of(reply: dict[str, Any], metric: str, label: str, dashed: bool = False
               ) -> charts.Series:
    points: list[tuple[datetime, float]] = []
    for measurement in reply["measurements"]:
        if measurement["type"] == metric:
            points += [(datetime.fromisoformat(v["timestamp"]), float(v["value"]))
                       for v in measurement["values"]]
    return charts.Series(label, tuple(sorted(points)), dashed)


@router.get("/charts")
async def chart_page(request: Request, scope: str = "nodepool", id: str = "",
                     window: str = "1h") -> HTMLResponse:
    """GPU allocation and utilization over time of a project, department or node pool, as
    the telemetry API returns them (the metrics service's samples)."""
    caller = await caller_of(request)
    service = _service(request)
    window = window if window in WINDOWS else "1h"
    projects = (await _api(org_routes.list_projects(caller, service)))["projects"]
    departments = (await _api(org_routes.list_departments(caller, service)))["departments"]
    pools = (await _api(org_routes.list_node_pools(caller, service)))["nodePools"]
    choices = {"nodepool": [(p["name"], p["name"]) for p in pools],
               "project": [(p["id"], p["name"]) for p in projects],
               "department": [(d["id"], d["name"]) for d in departments]}
    scope = scope if scope in choices else "nodepool"
    if not id and choices[scope]:
        id = choices[scope][0][0]
    end = datetime.now(UTC)
    start = end - timedelta(seconds=WINDOWS[window])
    drawn: list[str] = []
    if id:
        ask = {"project": telemetry_routes.project_metrics,
               "department": telemetry_routes.department_metrics,
               "nodepool": telemetry_routes.node_pool_metrics}[scope]
        reply = await _api(ask(id, caller, service, start=start, end=end, metric_type=[
            "GPU_ALLOCATION,GPU_UTILIZATION,GPU_QUOTA" + (
                ",GPU_CAPACITY" if scope == "nodepool" else "")],
            number_of_samples=CHART_SAMPLES))
        name = dict(choices[scope]).get(id, id)
        drawn.append(charts.line_chart(
            f"GPU allocation of {scope} {name}", "GPUs",
            [_series_of(reply, "GPU_ALLOCATION", "allocated"),
             _series_of(reply, "GPU_CAPACITY" if scope == "nodepool" else "GPU_QUOTA",
                        "capacity" if scope == "nodepool" else "quota (deserved)", True)],
            start, end))
        drawn.append(charts.line_chart(
            f"GPU utilization of {scope} {name}", "%",
            [_series_of(reply, "GPU_UTILIZATION", "utilization")], start, end))
    return _page(request, "charts.html", caller, scope=scope, id=id, window=window,
                 windows=list(WINDOWS), choices=choices, drawn=drawn)


# organisation and nodes -----------------------------------------------------------------

@router.get("/organisation")
async def organisation(request: Request) -> HTMLResponse:
    caller = await caller_of(request)
    service = _service(request)
    departments = await _api(org_routes.list_departments(caller, service))
    projects = await _api(org_routes.list_projects(caller, service))
    editable = {("department", d["id"]) for d in departments["departments"]
                if Perm.ORG_EDIT in caller.at_cluster()}
    editable |= {("project", p["id"]) for p in projects["projects"]
                 if Perm.ORG_EDIT in caller.perms_at(project_id=p["id"])}
    # time-aware fairness on in some pool: its usage and adjusted weight get columns
    time_aware = any(s.get("usage") for unit in departments["departments"] + projects["projects"]
                     for s in (unit.get("status") or {}).get("nodePoolResources") or ())
    return _page(request, "organisation.html", caller,
                 departments=departments["departments"], projects=projects["projects"],
                 editable=editable, time_aware=time_aware,
                 may_create_department=Perm.ORG_EDIT in caller.at_cluster(),
                 may_create_project=Perm.ORG_EDIT in caller.anywhere(),
                 message=request.query_params.get("message"))


UNITS = ("department", "project")


async def _unit(service: SubmissionService, caller: Grants, kind: str, unit_id: str
                ) -> dict[str, Any]:
    if kind == "department":
        return await _api(org_routes.get_department(unit_id, caller, service))
    return await _api(org_routes.get_project(unit_id, caller, service))


async def _unit_form(request: Request, caller: Grants, kind: str, unit: dict[str, Any] | None,
                     values: dict[str, str], problems: list[dict[str, str]],
                     resources: list[dict[str, Any]], status: int = 200, message: str = ""
                     ) -> HTMLResponse:
    service = _service(request)
    async with service.pool.acquire() as conn:
        pools = await repo.node_pool_names(conn)
    departments = []
    if kind == "project" and unit is None:
        listed = await _api(org_routes.list_departments(caller, service))
        departments = [d for d in listed["departments"]
                       if Perm.ORG_EDIT in caller.perms_at(department_id=d["id"])]
    if not values and unit is not None:
        for entry in unit["resources"]:
            for figure, _ in forms.QUOTA_FIGURES:
                value = entry["gpu"].get(figure)
                if value is not None and not (figure == "limit" and value < 0):
                    values[forms.quota_input(entry["nodePool"]["name"], figure)] = f"{value:g}"
    errors: dict[str, list[str]] = defaultdict(list)
    for p in problems:
        name = forms.quota_field(p["field"], resources)
        errors[name].append(p["reason"] if name else f"{p['field']}: {p['reason']}")
    return _page(request, "unit_form.html", caller, status=status, kind=kind, unit=unit,
                 values=values, pools=sorted(pools), figures=forms.QUOTA_FIGURES,
                 quota_input=forms.quota_input, departments=departments, errors=errors,
                 message=message)


@router.get("/organisation/{kind}/new")
async def new_unit(request: Request, kind: str) -> HTMLResponse:
    caller = await caller_of(request)
    if kind not in UNITS:
        raise Problem(ApiError(404, f"no kind of unit {kind!r}; use department or project"))
    return await _unit_form(request, caller, kind, None, {}, [], [])


@router.get("/organisation/{kind}/{unit_id}/edit")
async def edit_unit(request: Request, kind: str, unit_id: str) -> HTMLResponse:
    caller = await caller_of(request)
    if kind not in UNITS:
        raise Problem(ApiError(404, f"no kind of unit {kind!r}; use department or project"))
    unit = await _unit(_service(request), caller, kind, unit_id)
    return await _unit_form(request, caller, kind, unit, {}, [], [])


@router.post("/organisation/{kind}/save")
async def save_unit(request: Request, kind: str) -> Response:
    """Create a department or project, or change one's GPU quotas, through the API's own
    functions (their checks and access rules); refusals are shown next to their inputs."""
    caller = await caller_of(request)
    if kind not in UNITS:
        raise Problem(ApiError(404, f"no kind of unit {kind!r}; use department or project"))
    service = _service(request)
    form = await _form(request)
    unit_id = form.get("id") or None
    unit = await _unit(service, caller, kind, unit_id) if unit_id else None
    async with service.pool.acquire() as conn:
        pools = sorted(await repo.node_pool_names(conn))
    resources = forms.quota_resources(form, pools, unit["resources"] if unit else [])
    try:
        if unit is not None:
            body = org_models.OrgUnitUpdate.model_validate({"resources": resources})
            update = (org_routes.update_department if kind == "department"
                      else org_routes.update_project)
            saved = await update(unit_id, body, caller, service)
        elif kind == "department":
            saved = await org_routes.create_department(org_models.DepartmentIn.model_validate(
                {"name": form.get("name", ""), "resources": resources}), caller, service)
        else:
            saved = await org_routes.create_project(org_models.ProjectIn.model_validate(
                {"name": form.get("name", ""), "parentId": form.get("parentId") or None,
                 "resources": resources}), caller, service)
    except ValidationError as exc:
        return await _unit_form(request, caller, kind, unit, form,
                                validation_details(exc.errors()), resources, status=422,
                                message=f"the {kind} was not saved")
    except ApiError as exc:
        return await _unit_form(request, caller, kind, unit, form,
                                exc.details or [{"field": "", "reason": exc.message}],
                                resources, status=exc.code, message=exc.message)
    message = f"{kind} {saved['name']} saved"
    return RedirectResponse("/organisation?" + urlencode({"message": message}),
                            status_code=303)


@router.get("/nodes")
async def nodes(request: Request) -> HTMLResponse:
    caller = await caller_of(request)
    service = _service(request)
    listed = await _api(node_routes.list_nodes(caller, service))
    async with service.pool.acquire() as conn:
        holders = await repo.device_holders(conn, workload_routes.visible_scope(caller))
    return _page(request, "nodes.html", caller, nodes=listed["nodes"], holders=holders)
