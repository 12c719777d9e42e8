"""`fairway up`: run the whole platform in the foreground until Ctrl-C or SIGTERM.

Configuration comes from the environment (see `StackConfig.from_env`): FAIRWAY_STATE_DIR
(default `.fairway`), FAIRWAY_API_PORT (default 8080), NATS_URL, DATABASE_URL, KUBECONFIG,
FAIRWAY_KUBESIM_PROFILE. Never reads stdin, so a script can start it in the background and stop
it with SIGTERM. A second run on the same state directory finds the data of the first.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fairway_devstack.stack import Stack, StackConfig, StackError

SUBMIT_EXAMPLE = (
    ".venv/bin/fairway submit training hello --project default --gpu 1 --image busybox "
    "--annotation sim.fairway.io/run-seconds=20"
)


class _Shutdown(Exception):
    """Raised from the signal handler to leave whatever the main thread is doing."""


def _on_signal(signum: int, _frame: object) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # one stop is enough; let it finish
    raise _Shutdown(signal.Signals(signum).name)


def _relative(path: str | Path | None) -> str:
    if path is None:
        return "-"
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _summary(console: Console, stack: Stack) -> None:
    info = stack.info()
    kube = "kubesim" if "kubesim" in info["processes"] else "external cluster"
    rows = [
        ("API", f"{stack.api_url}   (OpenAPI: {stack.api_url}/api/docs)"),
        ("NATS", stack.nats_url or "-"),
        ("PostgreSQL", stack.database_url or "-"),
        ("Kubernetes", f"{_relative(stack.kubeconfig)}   ({kube})"),
        ("Logs", _relative(stack.logs_dir) + "/"),
        ("Admin token", _relative(stack.admin_token_file)),
        ("Stack file", _relative(stack.state_dir / "stack.json")),
    ]
    console.print()
    console.print("[bold green]Fairway is running[/]")
    for label, value in rows:  # plain lines, never wrapped or cut: easy to copy
        console.print(f"  [bold]{label:<12}[/] {escape(value)}", soft_wrap=True)
    console.print()
    console.print("Submit a workload:")
    console.print(f"  {SUBMIT_EXAMPLE}", soft_wrap=True, markup=False)
    console.print()
    if console.is_terminal:
        console.print("Press Ctrl-C to stop.")
    else:
        console.print(f"Stop with: kill -TERM {info['pid']}", markup=False)


def main(config: StackConfig | None = None) -> None:
    """Run the stack until interrupted. Returns after a clean stop (exit status 0); raises
    SystemExit(1) when it cannot start or a process dies while it runs."""
    console = Console(highlight=False)
    try:
        config = config if config is not None else StackConfig.from_env()
    except StackError as exc:
        console.print(f"[bold red]fairway up:[/] {escape(str(exc))}")
        raise SystemExit(1) from None
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _on_signal)
    stack = Stack(
        config,
        progress=lambda line: console.print(f"  [green]✓[/] {escape(line)}", soft_wrap=True),
    )
    console.print(
        f"Starting Fairway (state in {escape(_relative(stack.state_dir))}/) …", soft_wrap=True
    )
    failed = False
    try:
        stack.start()
        _summary(console, stack)
        while True:
            time.sleep(0.5)
            stack.check_processes()
    except _Shutdown as stop:
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            console.print(f"\nStopping Fairway ({stop}) …")
    except StackError as exc:
        failed = True
        console.print("[bold red]Fairway stopped:[/]")
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    finally:
        stack.stop()
    if failed:
        raise SystemExit(1)
    with contextlib.suppress(OSError):
        console.print("Stopped.")


if __name__ == "__main__":
    sys.exit(main())
