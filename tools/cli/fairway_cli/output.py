"""Printing: tables, JSON for scripts, errors with their exit codes."""

import json
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console

from fairway_cli.client import CliError

console = Console(soft_wrap=True)
err = Console(stderr=True)

PHASE_STYLE = {"Running": "green", "Completed": "bold green", "Failed": "bold red",
               "Pending": "yellow", "Initializing": "cyan", "Creating": "cyan",
               "Degraded": "magenta", "Stopped": "dim", "Deleted": "dim"}


def phase(value: str) -> str:
    return f"[{PHASE_STYLE.get(value, 'default')}]{value}[/]"


def fail(exc: CliError) -> NoReturn:
    err.print(f"[red]error:[/red] {exc}", highlight=False)
    raise typer.Exit(exc.exit_code)


def as_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def age(created: str) -> str:
    seconds = (datetime.now(UTC) - datetime.fromisoformat(created)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def bar(value: float, total: float, width: int = 20) -> str:
    """A text bar: filled up to value/total, red past 100%."""
    if total <= 0:
        return "[dim]" + "·" * width + "[/]" if value <= 0 else "[red]" + "█" * width + "[/]"
    filled = min(width, round(width * value / total))
    colour = "red" if value > total else "green"
    return f"[{colour}]" + "█" * filled + "[/][dim]" + "·" * (width - filled) + "[/]"
