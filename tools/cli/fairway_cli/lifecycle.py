"""`fairway lifecycle …`: tools around the lifecycle service's phase fold."""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fairway_lifecycle.core.replay import ReplayError, replay

app = typer.Typer(help="The lifecycle service's phase fold, offline.", no_args_is_help=True)


@app.command("replay")
def replay_command(
    events: Annotated[Path, typer.Argument(help="JSON lines: WORKLOAD, ADDED / MODIFIED / "
                                                "DELETED pod watch events, ACTION")],
    json_output: Annotated[bool, typer.Option("--json", help="one JSON object per "
                                                             "transition")] = False,
) -> None:
    """Fold recorded pod watch events into the phase transitions lifecycle would publish."""
    console = Console(soft_wrap=True)
    try:
        lines = events.read_text().splitlines() if str(events) != "-" else sys.stdin.readlines()
    except OSError as exc:
        Console(stderr=True).print(f"[red]error:[/red] cannot read {events}: {exc.strerror}")
        raise typer.Exit(2) from None
    try:
        for t in replay(lines):
            if json_output:
                sys.stdout.write(json.dumps(t.to_json()) + "\n")
            else:
                start = t.previous.value if t.previous else "·"
                console.print(f"{t.time.strftime('%H:%M:%S')}  {t.workload_id}  "
                              f"{start} → [bold]{t.phase.value}[/bold]  ({t.reason}) "
                              f"{t.message}", highlight=False)
    except ReplayError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {events}: {exc}")
        raise typer.Exit(2) from None
