"""`fairway project …`, `fairway department …`, `fairway node-pool list`, `fairway top …`."""

from typing import Annotated, Any

import typer
from rich.table import Table

from fairway_cli import config
from fairway_cli.client import Api, CliError
from fairway_cli.output import as_json, bar, console, fail

project_app = typer.Typer(help="Projects: list, create, choose the current one.",
                          no_args_is_help=True)
department_app = typer.Typer(help="Departments.", no_args_is_help=True)
node_pool_app = typer.Typer(help="Node pools.", no_args_is_help=True)
top_app = typer.Typer(help="Resource usage as tables with bars.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON")]


def _quota(unit: dict[str, Any], pool: str = "default") -> dict[str, Any]:
    for entry in unit.get("resources") or []:
        if entry["nodePool"]["name"] == pool:
            return entry
    return {}


def _status(unit: dict[str, Any], pool: str = "default") -> dict[str, Any]:
    for entry in (unit.get("status") or {}).get("nodePoolResources", []):
        if entry["nodePool"]["name"] == pool:
            return entry
    return {}


def _resources(gpu: float | None, cpu: float | None, memory: float | None,
               pool: str) -> list[dict[str, Any]]:
    if gpu is None and cpu is None and memory is None:
        return []
    entry: dict[str, Any] = {"nodePool": {"name": pool}}
    for kind, value in (("gpu", gpu), ("cpu", cpu), ("memory", memory)):
        if value is not None:
            entry[kind] = {"deserved": value}
    return [entry]


@project_app.command("list")
def project_list(json_output: JsonFlag = False) -> None:
    """Projects you can see, their GPU quota in the default pool, and which is current."""
    try:
        projects = Api().projects()
    except CliError as exc:
        fail(exc)
    if json_output:
        as_json(projects)
        return
    current = config.load().get("project")
    table = Table(box=None, header_style="bold")
    for col in ("", "NAME", "ID", "DEPARTMENT", "GPU QUOTA", "GPU LIMIT", "ALLOCATED"):
        table.add_column(col)
    for p in projects:
        q = _quota(p).get("gpu") or {}
        s = _status(p)
        table.add_row("*" if current in (p["name"], p["id"]) else "", p["name"], p["id"],
                      str(p.get("parentId") or "-"), f"{q.get('deserved', 0):g}",
                      "-" if q.get("limit") is None else f"{q['limit']:g}",
                      f"{(s.get('allocated') or {}).get('gpu', 0):g}")
    console.print(table)


@project_app.command("set")
def project_set(name: Annotated[str, typer.Argument(help="project name or id")]) -> None:
    """Make a project the default for submit and list."""
    try:
        Api().project_id(name)
    except CliError as exc:
        fail(exc)
    config.update(project=name)
    console.print(f"current project: [bold]{name}[/bold]")


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Argument()],
    department: Annotated[str | None, typer.Option("--department", "-d",
                                                   help="department id")] = None,
    gpu: Annotated[float | None, typer.Option(help="deserved GPUs")] = None,
    cpu: Annotated[float | None, typer.Option(help="deserved CPU cores")] = None,
    memory: Annotated[float | None, typer.Option(help="deserved memory (MiB)")] = None,
    node_pool: Annotated[str, typer.Option("--node-pool", help="pool of the quota")] = "default",
    json_output: JsonFlag = False,
) -> None:
    """Create a project (a System or Department administrator's job)."""
    body: dict[str, Any] = {"name": name, "resources": _resources(gpu, cpu, memory, node_pool)}
    if department:
        body["parentId"] = department
    try:
        project = Api().call("POST", "/api/v1/org-unit/projects", json=body)
    except CliError as exc:
        fail(exc)
    if json_output:
        as_json(project)
        return
    console.print(f"project [bold]{project['name']}[/bold] created (id {project['id']})",
                  highlight=False)


@project_app.command("delete")
def project_delete(name: Annotated[str, typer.Argument(help="project name or id")]) -> None:
    """Delete a project that has no workloads."""
    try:
        api = Api()
        api.call("DELETE", f"/api/v1/org-unit/projects/{api.project_id(name)}")
    except CliError as exc:
        fail(exc)
    console.print(f"project {name} deleted", highlight=False)


@department_app.command("list")
def department_list(json_output: JsonFlag = False) -> None:
    """Departments you can see."""
    try:
        departments = Api().call("GET", "/api/v1/org-unit/departments")["departments"]
    except CliError as exc:
        fail(exc)
    if json_output:
        as_json(departments)
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "ID", "GPU QUOTA", "ALLOCATED"):
        table.add_column(col)
    for d in departments:
        table.add_row(d["name"], d["id"], f"{(_quota(d).get('gpu') or {}).get('deserved', 0):g}",
                      f"{(_status(d).get('allocated') or {}).get('gpu', 0):g}")
    console.print(table)


@department_app.command("create")
def department_create(
    name: Annotated[str, typer.Argument()],
    gpu: Annotated[float | None, typer.Option(help="deserved GPUs")] = None,
    cpu: Annotated[float | None, typer.Option(help="deserved CPU cores")] = None,
    memory: Annotated[float | None, typer.Option(help="deserved memory (MiB)")] = None,
    node_pool: Annotated[str, typer.Option("--node-pool")] = "default",
) -> None:
    """Create a department."""
    try:
        d = Api().call("POST", "/api/v1/org-unit/departments", json={
            "name": name, "resources": _resources(gpu, cpu, memory, node_pool)})
    except CliError as exc:
        fail(exc)
    console.print(f"department [bold]{d['name']}[/bold] created (id {d['id']})",
                  highlight=False)


@node_pool_app.command("list")
def node_pool_list(json_output: JsonFlag = False) -> None:
    """Node pools."""
    try:
        pools = Api().call("GET", "/api/v1/node-pools")["nodePools"]
    except CliError as exc:
        fail(exc)
    if json_output:
        as_json(pools)
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "LABEL", "GPU PLACEMENT", "CPU PLACEMENT", "TOPOLOGY"):
        table.add_column(col)
    for p in pools:
        label = f"{p['labelKey']}={p['labelValue']}" if p.get("labelKey") else "-"
        levels = [level["nodeLabel"] for level in
                  (p.get("networkTopology") or {}).get("levels") or []]
        table.add_row(p["name"], label, p["placementStrategy"]["gpu"],
                      p["placementStrategy"]["cpu"], " > ".join(levels) or "-")
    console.print(table)


@top_app.command("projects")
def top_projects(
    node_pool: Annotated[str | None, typer.Option(
        "--node-pool", help="one node pool (default: every pool a project has GPUs in)")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Per project and node pool: GPUs allocated against the quota, requested, fair share;
    where time-aware fairness is on, the usage that counts and the adjusted weight too."""
    try:
        projects = Api().projects()
    except CliError as exc:
        fail(exc)
    rows = []
    for p in projects:
        pools = [node_pool] if node_pool else _pools_of(p)
        for pool in pools:
            s = _status(p, pool)
            q = _quota(p, pool).get("gpu") or {}
            rows.append({"project": p["name"], "nodePool": pool,
                         "quota": q.get("deserved", 0), "limit": q.get("limit"),
                         "allocated": (s.get("allocated") or {}).get("gpu", 0),
                         "requested": (s.get("requested") or {}).get("gpu", 0),
                         "fairShare": (s.get("fairShare") or {}).get("gpu", 0),
                         # time-aware fairness on in the pool: GPU-seconds that count, and
                         # the over-quota weight they corrected the project's to
                         "usage": (s.get("usage") or {}).get("gpu"),
                         "adjustedOverQuotaWeight":
                             (s.get("adjustedOverQuotaWeight") or {}).get("gpu")})
    if json_output:
        as_json(rows)
        return
    time_aware = any(r["usage"] is not None for r in rows)
    title = f"GPUs in node pool {node_pool}" if node_pool else "GPUs per project and node pool"
    table = Table(box=None, header_style="bold", title=title)
    for col in ("PROJECT", "POOL", "ALLOCATED", "", "QUOTA", "REQUESTED", "FAIR SHARE") + (
            ("USAGE (GPU-H)", "ADJUSTED WEIGHT") if time_aware else ()):
        table.add_column(col)
    for r in rows:
        usage = () if not time_aware else (
            "-" if r["usage"] is None else f"{r['usage'] / 3600:.3g}",
            "-" if r["adjustedOverQuotaWeight"] is None else f"{r['adjustedOverQuotaWeight']:g}")
        table.add_row(r["project"], r["nodePool"], f"{r['allocated']:g}",
                      bar(r["allocated"], r["quota"]), f"{r['quota']:g}",
                      f"{r['requested']:g}", f"{r['fairShare']:g}", *usage)
    console.print(table)


def _pools_of(unit: dict[str, Any]) -> list[str]:
    """The pools where a project has a quota or holds, asks for or is owed GPUs; `default`
    when none."""
    pools = [e["nodePool"]["name"] for e in unit.get("resources") or []]
    for e in (unit.get("status") or {}).get("nodePoolResources", []):
        busy = any((e.get(k) or {}).get("gpu") for k in ("allocated", "requested", "fairShare"))
        if busy and e["nodePool"]["name"] not in pools:
            pools.append(e["nodePool"]["name"])
    return pools or ["default"]


@top_app.command("nodes")
def top_nodes(
    node_pool: Annotated[str | None, typer.Option("--node-pool")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Per node: GPUs allocated out of its GPUs, pool, readiness."""
    try:
        nodes = Api().call("GET", "/api/v1/nodes")["nodes"]
    except CliError as exc:
        fail(exc)
    if node_pool:
        nodes = [n for n in nodes if n["nodePool"] == node_pool]
    if json_output:
        as_json(nodes)
        return
    table = Table(box=None, header_style="bold")
    for col in ("NODE", "POOL", "READY", "GPU", "ALLOCATED", "", "TOTAL"):
        table.add_column(col)
    for n in nodes:
        table.add_row(n["name"], n["nodePool"], "yes" if n["ready"] else "[red]no[/]",
                      n.get("gpuProduct") or "-", f"{n['allocatedGpus']:g}",
                      bar(n["allocatedGpus"], n["gpus"]), str(n["gpus"]))
    total = sum(n["gpus"] for n in nodes)
    used = sum(n["allocatedGpus"] for n in nodes)
    table.add_row("[bold]total[/]", "", "", "", f"{used:g}", bar(used, total), str(total))
    console.print(table)
    busy = [(n["name"], d) for n in nodes for d in n.get("devices") or [] if d["pods"]]
    if busy:
        console.print(_devices_table(busy))


def _gib(mib: int | None) -> str:
    return "?" if mib is None else f"{mib / 1024:.3g}"


def _devices_table(devices: list[tuple[str, dict[str, Any]]]) -> Table:
    """The devices that hold pods: each pod (→N: its GPU process runs on device N, moved by the
    node-level scheduler; ←: counted on another device, runs here; ⇣: its GPU memory is
    swapped out to host memory), GPU memory in GiB, and the GPU memory swapped out and the
    utilization of its fractions (GPU memory swap)."""
    table = Table(title="GPU devices", box=None, header_style="bold")
    for col in ("NODE", "GPU", "PODS", "REQUESTED", "IN USE", "", "MEMORY", "SWAPPED", "UTIL"):
        table.add_column(col)
    for node, d in devices:
        names = []
        for p in d["pods"]:
            mark = "" if p["countedHere"] and p["runsHere"] else (
                "←" if p["runsHere"] else "→")
            if p.get("memorySwappedMib"):
                mark += "⇣"
            names.append(f"{p['name']}{mark}")
        memory = d.get("memoryMib") or 0
        util = d.get("utilizationPercent")
        table.add_row(node, str(d["index"]), " ".join(names), _gib(d["memoryRequestedMib"]),
                      _gib(d["memoryInUseMib"]), bar(d["memoryInUseMib"], memory),
                      _gib(d.get("memoryMib")), _gib(d.get("memorySwappedMib") or 0),
                      "-" if util is None else f"{util:g}%")
    return table
