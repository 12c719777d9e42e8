"""`fairway up`: run the whole platform in the foreground until Ctrl-C or SIGTERM.

Configuration comes from the environment (see `StackConfig.from_env`): FAIRWAY_STATE_DIR
(default `.fairway`), FAIRWAY_API_PORT (default 8080), NATS_URL, FAIRWAY_NATS_REPLICAS (1, or
3 or 5 embedded servers as one JetStream cluster), DATABASE_URL, KUBECONFIG,
FAIRWAY_KUBESIM_PROFILE. Never reads stdin, so a script can start it in the background and stop
it with SIGTERM. A second run on the same state directory finds the data of the first; while
the first still runs, the second says so (its pid and API URL) and exits with status 1.

While it runs it supervises: a service, NATS, PostgreSQL or kubesim that crashes is restarted
with back-off (`Stack.supervise`), reported here and in logs/supervisor.log; it never stops
the stack.
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

from fairway_devstack.stack import Stack, StackConfig, StackError, SupervisionEvent

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
        ("Console", f"{stack.api_url}/   (sign in as admin; password in "
                    f"{_relative(stack.state_dir / 'admin.json')})"),
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


def _register_node_pools(console: Console, stack: Stack) -> None:
    """The simulated cluster's node pools exist in the API too, so quotas can name them
    (`fairway project create team-a --gpu 8 --node-pool a100`). Already there: left alone."""
    if stack.config.kubeconfig:  # a real cluster: its pools are the operator's to define
        return
    try:
        import httpx

        from fairway_kubesim.profile import load_profile
        from fairway_kubesim.profiles import DEFAULT_PROFILE

        profile = load_profile(stack.config.kubesim_profile or DEFAULT_PROFILE)
        token = stack.admin_token_file.read_text().strip()
        with httpx.Client(base_url=stack.api_url, timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as api:
            for pool in profile.node_pools:
                settings = ({"networkTopology": {"levels": [
                    {"nodeLabel": level} for level in pool.topology_levels]}}
                    if pool.topology_levels else {})
                if pool.gpu_resource_optimization:
                    settings["gpuResourceOptimization"] = dict(pool.gpu_resource_optimization)
                if pool.name == "default" or not pool.label_key:
                    if settings:  # the default pool exists: it takes the profile's settings
                        api.put("/api/v1/node-pools/default", json=settings)
                    continue
                answer = api.post("/api/v1/node-pools", json={
                    "name": pool.name, "labelKey": pool.label_key,
                    "labelValue": pool.label_value,
                    "placementStrategy": dict(pool.placement), **settings})
                if answer.status_code == 201:
                    console.print(f"  [green]✓[/] node pool {pool.name} "
                                  f"({pool.label_key}={pool.label_value})", soft_wrap=True)
                elif answer.status_code != 409:
                    console.print(f"  [yellow]![/] node pool {pool.name}: {answer.text[:200]}",
                                  soft_wrap=True, markup=False)
    except Exception as exc:  # the platform runs without them; quotas then use `default`
        console.print(f"  [yellow]![/] node pools not registered: {exc}", markup=False)


def _report(console: Console, events: list[SupervisionEvent]) -> None:
    for event in events:
        style = "bold red" if event.loud else "yellow"
        stamp = time.strftime("%H:%M:%S")
        with contextlib.suppress(OSError):  # the terminal may be gone; logs/supervisor.log has it
            console.print(f"[{style}]{stamp} {escape(event.text)}[/]", soft_wrap=True)


def main(config: StackConfig | None = None) -> None:
    """Run the stack until interrupted. Returns after a clean stop (exit status 0); raises
    SystemExit(1) when it cannot start (a crash later is healed, not fatal)."""
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
        _register_node_pools(console, stack)
        _summary(console, stack)
        while True:
            time.sleep(0.5)
            _report(console, stack.supervise())
    except _Shutdown as stop:
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            console.print(f"\nStopping Fairway ({stop}) …")
    except StackError as exc:
        failed = True
        console.print("[bold red]Fairway did not start:[/]")
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    finally:
        stack.stop()
    if failed:
        raise SystemExit(1)
    with contextlib.suppress(OSError):
        console.print("Stopped.")


if __name__ == "__main__":
    sys.exit(main())
