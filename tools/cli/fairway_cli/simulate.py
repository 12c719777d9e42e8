"""`fairway simulate SCENARIO.yaml [--json]`: the scheduler's core against a described cluster.

Register with `app.command("simulate")(simulate_command)`. Exit 0 when the scenario ran, 2 when
it was rejected (unreadable, not YAML, or refused by the scenario checks).
"""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from fairway_scheduler.simulation import ScenarioError, parse_scenario
from fairway_scheduler.simulation import simulate as run_scenario

STATUS_STYLE = {"running": "green", "completed": "bold green", "pending": "yellow"}


def simulate(scenario: Path, json_output: bool) -> int:
    """Run the scenario and print the result; the exit status."""
    out, err = Console(), Console(stderr=True)
    if not out.is_terminal:
        out = Console(width=200)  # piped or captured: do not squeeze the tables to 80 columns
    try:
        data = yaml.safe_load(scenario.read_text())
        parsed = parse_scenario(data)
    except OSError as exc:
        err.print(f"[red]error:[/red] {scenario}: {exc.strerror or exc}")
        return 2
    except yaml.YAMLError as exc:
        err.print(f"[red]error:[/red] {scenario}: not valid YAML: {exc}")
        return 2
    except ScenarioError as exc:
        err.print(f"[red]error:[/red] {scenario}: {exc}", markup=False, highlight=False)
        return 2
    result = run_scenario(parsed)
    if json_output:
        print(json.dumps(result, indent=2))
    else:
        print_tables(result, out)
    return 0


def simulate_command(
    scenario: Annotated[Path, typer.Argument(help="scenario file (YAML)", show_default=False)],
    json_output: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Run the scheduler's decision core on a scenario, in virtual time, and show what it did."""
    raise typer.Exit(simulate(scenario, json_output))


def print_tables(result: dict[str, Any], console: Console) -> None:
    rounds = Table(title="Decisions by round")
    for column in ("t", "action", "workload", "pod", "node", "GPUs", "portion"):
        rounds.add_column(column)
    for round_ in result["rounds"]:
        for d in round_["decisions"]:
            rounds.add_row(str(round_["t"]), d["action"], d["workload"], str(d.get("pod", "")),
                           d.get("node", ""), ",".join(map(str, d.get("gpus", []))),
                           "" if d.get("portion") is None else str(d["portion"]))
    console.print(rounds)

    workloads = Table(title="Workloads after the last round")
    for column in ("workload", "status", "pods", "started", "reason", "message"):
        workloads.add_column(column, overflow="fold")
    for name, w in result["workloads"].items():
        style = STATUS_STYLE.get(w["status"], "")
        pods = ", ".join(f"{p['node']}[{','.join(map(str, p['gpus']))}]"
                         + (f" x{p['portion']}" if p["portion"] is not None else "")
                         for p in w["pods"])
        workloads.add_row(name, f"[{style}]{w['status']}[/{style}]" if style else w["status"],
                          pods, "" if w["startedAt"] is None else str(w["startedAt"]),
                          w["pendingReason"] or "", w["pendingMessage"] or "")
    console.print(workloads)

    queues = Table(title="Queues (GPU)")
    # Time-aware fairness on in some pool: its usage and the weight it corrected to, too.
    time_aware = any("usage" in per["gpu"] for q in result["queues"].values()
                     for per in q["pools"].values())
    for column in ("queue", "kind", "pool", "deserved", "limit", "weight", "fair share",
                   "allocated", "non-preemptible", "requested"):
        queues.add_column(column)
    if time_aware:
        queues.add_column("usage (GPU-hours)")
        queues.add_column("adjusted weight")
    for name, q in result["queues"].items():
        for pool, per in q["pools"].items():
            g = per["gpu"]
            row = [name, q["kind"], pool, str(g["deserved"]),
                   "none" if g["limit"] == -1 else str(g["limit"]),
                   str(g["overQuotaWeight"]), str(g["fairShare"]), str(g["allocated"]),
                   str(g["allocatedNonPreemptible"]), str(g["requested"])]
            if time_aware:
                row += ["" if "usage" not in g else f"{g['usage'] / 3600:.1f}",
                        str(g.get("adjustedOverQuotaWeight", ""))]
            queues.add_row(*row)
    console.print(queues)
