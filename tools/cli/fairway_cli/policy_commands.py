"""`fairway policy get | set | effective`: policies per workload type and scope."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from fairway_cli.client import INVALID, NOT_FOUND, Api, CliError
from fairway_cli.output import as_json, console, fail
from fairway_contracts.workloads import PLURALS

policy_app = typer.Typer(help="Policies: defaults, rules and imposed values per workload type "
                              "and scope (cluster, department, project).",
                         no_args_is_help=True)

# what people type → the API's path segment
TYPES = {str(kind): plural for kind, plural in PLURALS.items()}
TYPES.update({plural: plural for plural in PLURALS.values()})

TypeArg = Annotated[str, typer.Argument(help="workspace, training, distributed or inference")]
ProjectOpt = Annotated[str | None, typer.Option("--project", "-p", help="project name or id")]
DepartmentOpt = Annotated[str | None, typer.Option("--department", "-d",
                                                   help="department name or id")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON")]


def _path(kind: str) -> str:
    if kind not in TYPES:
        raise CliError(f"no workload type {kind!r}; use workspace, training, distributed or "
                       "inference", INVALID)
    return f"/api/v2/policy/{TYPES[kind]}"


def _department_id(api: Api, name_or_id: str) -> str:
    departments = api.call("GET", "/api/v1/org-unit/departments")["departments"]
    for d in departments:
        if name_or_id in (d["name"], d["id"]):
            return d["id"]
    if name_or_id.isdigit():  # an id the caller cannot list: let the API say why
        return name_or_id
    names = ", ".join(d["name"] for d in departments) or "none"
    raise CliError(f"no department {name_or_id!r}; departments: {names}", NOT_FOUND)


def _meta(api: Api, project: str | None, department: str | None) -> dict[str, Any]:
    if project and department:
        raise CliError("give --project or --department, not both", INVALID)
    if project:
        return {"scope": "project", "projectId": api.project_id(project)}
    if department:
        return {"scope": "department", "departmentId": _department_id(api, department)}
    return {"scope": "cluster"}


def _query(meta: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in meta.items() if v is not None}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested policy sections to `path: value` (a rule object or a list is one leaf)."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        rule_like = isinstance(value, dict) and any(k in _RULE_WORDS for k in value)
        if isinstance(value, dict) and value and not rule_like:
            out.update(_flat(value, path))
        else:
            out[path] = value
    return out


_RULE_WORDS = {"canEdit", "required", "min", "max", "step", "options", "canAdd", "locked"}


def _rule_text(rule: dict[str, Any]) -> str:
    parts = []
    for name, value in rule.items():
        if name == "options":
            value = ", ".join(str(o.get("value") if isinstance(o, dict) else o) for o in value)
            parts.append(f"options [{value}]")
        elif name == "locked":
            parts.append(f"locked [{', '.join(value)}]")
        else:
            parts.append(f"{name} {json.dumps(value)}")
    return "; ".join(parts)


def _source(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    if entry["scope"] == "cluster":
        return "cluster"
    kind = entry["scope"]
    return f"{kind} {entry.get(f'{kind}Name') or entry.get(f'{kind}Id')}"


class _Rows(Table):
    """A table whose cells are plain text (a rule like `options [a, b]` is not markup)."""

    def add_row(self, *cells: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().add_row(*(escape(str(c)) for c in cells), **kwargs)


def _effective_table(effective: dict[str, Any], title: str) -> Table:
    table = _Rows(box=None, header_style="bold", title=escape(title), title_justify="left")
    for col in ("FIELD", "KIND", "VALUE", "SET BY"):
        table.add_column(col)
    sources = effective.get("sources") or {}
    defaults = sources.get("defaults") or {}
    for key, entry in defaults.items():
        path, _, name = key.partition("[")
        value = _flat(effective["defaults"]).get(path)
        if name:
            name = name.rstrip("]")
            value = next((i["value"] for i in value or [] if i["name"] == name), None)
            value = f"{name}={value}"
        table.add_row(path, "default", json.dumps(value) if not name else value,
                      _source(entry))
    for path, entry in (sources.get("rules") or {}).items():
        rule = _flat(effective["rules"]).get(path) or {}
        table.add_row(path, "rule", _rule_text(rule), _source(entry))
    for path, entry in (sources.get("imposed") or {}).items():
        table.add_row(path, "imposed", json.dumps(_flat(effective["imposed"]).get(path)),
                      _source(entry))
    return table


def _print(body: dict[str, Any], *, own: bool) -> None:
    meta = body["meta"]
    where = _source({**meta})
    if own:
        if body.get("policy") is None:
            console.print(f"the {where} has no {body['type']} policy of its own",
                          highlight=False)
        else:
            by = f" (last set by {meta['updatedBy']})" if meta.get("updatedBy") else ""
            console.print(f"[bold]{body['type']} policy of the {where}[/bold]{by}",
                          highlight=False)
            console.print(escape(yaml.safe_dump(body["policy"], sort_keys=False).rstrip()),
                          highlight=False)
        console.print()
    effective = body.get("effective") or {}
    if not any((effective.get("sources") or {}).values()):
        console.print(f"no {body['type']} policy applies in the {where}", highlight=False)
        return
    console.print(_effective_table(effective, f"effective {body['type']} policy in the "
                                              f"{where}"))


@policy_app.command("get")
def policy_get(kind: TypeArg, project: ProjectOpt = None, department: DepartmentOpt = None,
               json_output: JsonFlag = False) -> None:
    """A scope's own policy and the effective one, with where each entry comes from."""
    try:
        api = Api()
        body = api.call("GET", _path(kind), params=_query(_meta(api, project, department)))
    except CliError as exc:
        fail(exc)
    if json_output:
        as_json(body)
        return
    _print(body, own=True)


@policy_app.command("effective")
def policy_effective(kind: TypeArg,
                     project: Annotated[str, typer.Option("--project", "-p",
                                                          help="project name or id")],
                     json_output: JsonFlag = False) -> None:
    """The policy a submission in the project meets: every default, rule and imposed value
    with the scope that set it."""
    try:
        api = Api()
        body = api.call("GET", _path(kind), params=_query(_meta(api, project, None)))
    except CliError as exc:
        fail(exc)
    if json_output:
        as_json({"type": body["type"], "meta": body["meta"], "effective": body["effective"]})
        return
    _print(body, own=False)


@policy_app.command("set")
def policy_set(
    kind: TypeArg,
    file: Annotated[Path, typer.Argument(help="YAML or JSON: {defaults, rules, imposed}, or "
                                              "the API's whole body {meta, policy}")],
    project: ProjectOpt = None,
    department: DepartmentOpt = None,
    validate_only: Annotated[bool, typer.Option("--validate-only",
                                                help="check the policy, save nothing")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Replace a scope's policy (the cluster's without --project or --department)."""
    try:
        try:
            document = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CliError(f"cannot read {file}: {exc}", INVALID) from None
        if not isinstance(document, dict):
            raise CliError(f"{file}: expected a mapping with defaults, rules or imposed",
                           INVALID)
        policy = document.get("policy", document) if "meta" in document else document
        api = Api()
        body = api.call("PUT", _path(kind), params={"validateOnly": str(validate_only).lower()},
                        json={"meta": _meta(api, project, department), "policy": policy})
    except CliError as exc:
        fail(exc)
    if json_output:
        as_json(body)
        return
    where = _source(body["meta"])
    verb = "is valid (nothing saved)" if validate_only else "saved"
    console.print(f"{body['type']} policy of the {where} {verb}", highlight=False)
    _print(body, own=False)
