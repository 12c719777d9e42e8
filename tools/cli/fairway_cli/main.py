"""The `fairway` command line."""

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fairway_cli.client import Api, CliError

app = typer.Typer(help="Fairway: fair, fast GPU workload management for Kubernetes.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
submit_app = typer.Typer(help="Submit a workload.", no_args_is_help=True)
app.add_typer(submit_app, name="submit")
console = Console(soft_wrap=True)
err = Console(stderr=True)

PHASE_STYLE = {"Running": "green", "Completed": "bold green", "Failed": "bold red",
               "Pending": "yellow", "Initializing": "cyan", "Creating": "cyan",
               "Degraded": "magenta"}


def _fail(exc: CliError) -> None:
    err.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(1)


def _pairs(values: list[str] | None, flag: str) -> list[dict[str, str]]:
    out = []
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"{flag} {item!r}: expected NAME=VALUE")
        out.append({"name": name, "value": value})
    return out


def _age(created: str) -> str:
    seconds = (datetime.now(UTC) - datetime.fromisoformat(created)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


@app.command()
def up() -> None:
    """Run the whole platform on this machine (embedded NATS, PostgreSQL, kubesim, services)."""
    from fairway_devstack.up import main as up_main

    up_main()


@submit_app.command("training")
def submit_training(
    name: Annotated[str, typer.Argument(help="workload name (lowercase, digits, '-')")],
    project: Annotated[str, typer.Option("--project", "-p", help="project name or id")],
    image: Annotated[str, typer.Option("--image", "-i", help="container image")],
    gpu: Annotated[int, typer.Option("--gpu", "-g", help="whole GPUs per pod")] = 0,
    command: Annotated[str | None, typer.Option(help="command to run")] = None,
    annotation: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable")] = None,
    label: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE")] = None,
    node_pools: Annotated[list[str] | None, typer.Option("--node-pools",
                                                         help="pool, in preference order")] = None,
    priority: Annotated[str | None, typer.Option(help="priority class")] = None,
    backoff_limit: Annotated[int | None, typer.Option(help="retries before Failed")] = None,
) -> None:
    """Submit a training."""
    try:
        api = Api()
        spec: dict = {"image": image, "compute": {"gpuDevicesRequest": gpu},
                      "annotations": _pairs(annotation, "--annotation"),
                      "labels": _pairs(label, "--label"),
                      "environmentVariables": _pairs(env, "--env")}
        if command:
            spec["command"] = command
        if node_pools:
            spec["nodePools"] = node_pools
        if priority:
            spec["priorityClass"] = priority
        if backoff_limit is not None:
            spec["backoffLimit"] = backoff_limit
        body = {"name": name, "projectId": api.project_id(project), "spec": spec}
        workload = api.call("POST", "/api/v1/workloads/trainings", json=body)
    except CliError as exc:
        _fail(exc)
    console.print(f"training [bold]{workload['name']}[/bold] submitted to project "
                  f"{workload['projectName']} (id {workload['workloadId']})")
    console.print(f"follow it with: fairway describe {workload['name']}")


@app.command("list")
def list_workloads(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="refresh every 2 s")] = False,
) -> None:
    """List workloads: phase, GPUs, age, and why a pending one waits."""
    try:
        api = Api()
        while True:
            params = {"limit": 500}
            if project:
                params["filterBy"] = f"projectName=={project}"
            data = api.call("GET", "/api/v1/workloads", params=params)
            table = Table(box=None, header_style="bold")
            for col in ("NAME", "PROJECT", "TYPE", "PHASE", "GPUS", "PODS", "AGE", "REASON"):
                table.add_column(col)
            for w in data["workloads"]:
                phase = w["phase"]
                why = w["phaseMessage"] if phase in ("Pending", "Failed", "Degraded") else ""
                table.add_row(w["name"], w["projectName"], w["type"],
                              f"[{PHASE_STYLE.get(phase, '')}]{phase}[/]",
                              str(w["requestedResources"].get("gpu", 0)),
                              f"{w['runningPods']}/{w['requestedPods']}", _age(w["createdAt"]),
                              why or "")
            if watch:
                console.clear()
            console.print(table)
            if not watch:
                break
            time.sleep(2)
    except CliError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@app.command()
def describe(name: Annotated[str, typer.Argument(help="workload name or id")]) -> None:
    """Show a workload, its pods and its phase history."""
    try:
        api = Api()
        w = api.find_workload(name)
        events = api.call("GET", f"/api/v1/workloads/{w['workloadId']}/events")["events"]
    except CliError as exc:
        _fail(exc)
    phase = w["phase"]
    console.print(f"[bold]{w['name']}[/bold]  ({w['type']}, project {w['projectName']}, "
                  f"id {w['workloadId']})")
    console.print(f"phase:    [{PHASE_STYLE.get(phase, '')}]{phase}[/]"
                  + (f" — {w['phaseMessage']}" if w.get("phaseMessage") else ""))
    console.print(f"priority: {w['priorityClassName']} "
                  f"({'preemptible' if w['preemptible'] else 'non-preemptible'})")
    console.print(f"GPUs:     {w['requestedResources'].get('gpu', 0)} requested, "
                  f"{w['allocatedResources'].get('gpu', 0)} allocated")
    console.print(f"pending {w['totalPendingTimeSeconds']:.1f}s, "
                  f"running {w['totalRunningTimeSeconds']:.1f}s")
    table = Table(title="phase history", box=None, header_style="bold")
    for col in ("TIME", "FROM", "TO", "REASON", "MESSAGE"):
        table.add_column(col)
    for e in events:
        table.add_row(e["time"][11:19], e["from"] or "-", e["to"], e["reason"], e["message"])
    console.print(table)


def _mount_kubesim() -> None:
    try:
        from fairway_kubesim.cli import app as kubesim_app
    except ImportError:
        return
    app.add_typer(kubesim_app, name="kubesim", help="Run the simulated GPU cluster alone.")


_mount_kubesim()

if __name__ == "__main__":
    app()
