"""`python -m fairway_kubesim` / `fairway kubesim`: serve a simulated cluster until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from .profile import ProfileError, load_profile
from .profiles import DEFAULT_PROFILE

app = typer.Typer(
    name="kubesim",
    help="Serve a simulated GPU cluster behind the Kubernetes API (kubesim).",
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def main(
    profile: Annotated[Path, typer.Option(
        "--profile", "-p", help="Cluster profile (YAML): a scenario file or its cluster "
        "section. Default: the built-in two-pool profile.", dir_okay=False)] = DEFAULT_PROFILE,
    kubeconfig: Annotated[Path, typer.Option(
        "--kubeconfig", "-k", help="Where to write a kubeconfig for the running simulator.",
        dir_okay=False)] = ...,  # type: ignore[assignment]
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.",
                                      min=0, max=65535)] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    bookmark_interval: Annotated[float, typer.Option(
        help="Seconds between BOOKMARK events on watches that allow them.", min=0.01)] = 10.0,
    history: Annotated[int, typer.Option(
        help="Watch events kept per resource kind (older versions answer 410).", min=1)
    ] = 20_000,
    seed: Annotated[int | None, typer.Option(help="Seed for the timing jitter.")] = None,
    admin: Annotated[bool, typer.Option(
        "--admin", help="Serve the fault-injection endpoint under /admin (tests only).")
    ] = False,
    max_events: Annotated[int, typer.Option(
        help="core/v1 Events kept, oldest dropped first; 0 also stops kubelet events.", min=0)
    ] = 20_000,
    snapshot: Annotated[Path | None, typer.Option(
        "--snapshot", help="Keep the cluster in this file (written every few seconds and on "
        "stop, read at start): a restart keeps nodes, namespaces, pods and leases.",
        dir_okay=False)] = None,
    default_scheduler: Annotated[bool, typer.Option(
        "--default-scheduler", help="Bind pods whose schedulerName is default-scheduler to "
        "nodes with room, as kube-scheduler would.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run kubesim in the foreground until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        loaded = load_profile(profile)
    except ProfileError as exc:
        typer.echo(f"kubesim: bad profile: {exc}", err=True)
        raise typer.Exit(2) from None
    # Larger collector thresholds, and what start-up built frozen: with thousands of pods
    # changing, CPython's defaults run a full collection every few seconds that stops the
    # API server (and every watch) for hundreds of milliseconds (see
    # fairway_runtime.gc_tuning, which the services use).
    gc.set_threshold(20_000, 50, 20)
    try:
        asyncio.run(_serve(loaded, kubeconfig, host, port, bookmark_interval, history, seed,
                           admin, max_events, snapshot, default_scheduler))
    except OSError as exc:
        typer.echo(f"kubesim: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


async def _serve(profile, kubeconfig: Path, host: str, port: int,  # type: ignore[no-untyped-def]
                 bookmark_interval: float, history: int, seed: int | None,
                 admin: bool = False, max_events: int = 20_000,
                 snapshot: Path | None = None, default_scheduler: bool = False) -> None:
    from .server import KubeSim

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with KubeSim(profile, host=host, port=port, history=history,
                       bookmark_interval=bookmark_interval, seed=seed, admin=admin,
                       max_events=max_events, snapshot=snapshot,
                       default_scheduler=default_scheduler) as sim:
        path = sim.write_kubeconfig(kubeconfig)
        gc.collect()
        gc.freeze()
        source = profile.source or "a profile"
        restored = (f"; cluster restored from {snapshot}" if snapshot and sim.restored
                    else "")
        print(f"kubesim: listening on {sim.url} ({len(profile.nodes)} nodes from {source}); "
              f"kubeconfig {path}" + ("; admin endpoint on" if admin else "") + restored,
              file=sys.stderr, flush=True)
        await stop.wait()
    print("kubesim: stopped", file=sys.stderr, flush=True)
