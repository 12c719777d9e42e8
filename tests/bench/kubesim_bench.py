"""`make bench-kubesim`: kubesim at scale through the official `kubernetes` client.

Starts kubesim as its own process with the 5,000-node profile, then, through the official
client (sync `CoreV1Api`, a few worker processes with a few threads each):

1. creates N pods (50,000 by default) spread over a few namespaces,
2. binds them round-robin to the profile's nodes (the `pods/binding` subresource),
3. lets the simulated kubelets take them to Running,

while two watchers (`kubernetes.watch.Watch` on all pods, each in its own process) follow
every pod event. Prints creates/s, binds/s, the time until all pods are Running, the latency
from a status change to its watch event (p50/p99) and the peak RSS of the kubesim process,
each beside its target.

Latency: a bind is a status change made by a client (it sets `spec.nodeName` and the
`PodScheduled` condition); the latency is from the moment the bind request is sent to the
moment each watcher has parsed the event that carries it. That includes the bind request
itself, so it is an upper bound of the server's write → watch delivery delay. The latency of
kubelet-made changes (→ Running) is reported too, from the server's own timestamps, at
second precision (informational).

    make bench-kubesim
    make bench-kubesim BENCH_ARGS="--pods 2000 --nodes-profile \
        tools/kubesim/fairway_kubesim/profiles/default.yaml"

Set KUBESIM_BENCH_CPROFILE=FILE to run kubesim under cProfile (written to FILE at the end).
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from fairway_kubesim import LARGE_PROFILE

TARGETS = {"creates": 1000.0, "binds": 1000.0, "watch_p99_ms": 250.0, "rss_gib": 2.0}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# kubesim process ----------------------------------------------------------------------------

def start_kubesim(profile: Path, workdir: Path, extra: list[str]) -> tuple[subprocess.Popen,
                                                                          Path, str]:
    kubeconfig = workdir / "kubeconfig"
    log = open(workdir / "kubesim.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "fairway_kubesim", "--profile", str(profile),
                             "--kubeconfig", str(kubeconfig), "--port", "0", *extra],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not kubeconfig.exists():
        if proc.poll() is not None:
            raise SystemExit(f"kubesim exited: {(workdir / 'kubesim.log').read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("kubesim did not start within 120 s")
        time.sleep(0.05)
    import yaml

    url = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("kubesim is not ready") from None
            time.sleep(0.05)
    return proc, kubeconfig, url


def peak_rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return float("nan")


def new_api(kubeconfig: Path, pool: int) -> client.CoreV1Api:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = pool
    cfg.retries = 3
    return client.CoreV1Api(client.ApiClient(cfg))


# watchers -----------------------------------------------------------------------------------

def watcher_main(kubeconfig: str, start_rv: str, expected: int, timeout: float,
                 ready: Any, results: Any) -> None:
    """Follow all pods from `start_rv`; record when each pod was first seen bound and
    Running. Resumes from the last version after a stream ends; re-lists after a 410."""
    api = new_api(Path(kubeconfig), 2)
    bound: dict[str, float] = {}
    running: dict[str, float] = {}
    failed: dict[str, float] = {}  # rejected by a kubelet (a profile too small for --pods)
    transitions: list[float] = []  # server timestamp -> arrival, for → Running (seconds)
    rv = start_rv
    events = reconnects = relists = 0
    deadline = time.monotonic() + timeout
    ready.set()
    while len(running) + len(failed) < expected and time.monotonic() < deadline:
        w = watch.Watch()
        try:
            for event in w.stream(api.list_pod_for_all_namespaces, resource_version=rv,
                                  allow_watch_bookmarks=True, timeout_seconds=60,
                                  deserialize=False):
                now = time.time()
                obj = event["object"]
                rv = obj["metadata"]["resourceVersion"]
                if event["type"] == "BOOKMARK":
                    continue
                events += 1
                meta, spec, status = obj["metadata"], obj.get("spec", {}), obj.get("status", {})
                key = meta["namespace"] + "/" + meta["name"]
                if spec.get("nodeName") and key not in bound:
                    bound[key] = now
                if status.get("phase") == "Failed" and key not in failed:
                    failed[key] = now
                    if len(running) + len(failed) >= expected:
                        w.stop()
                        break
                if status.get("phase") == "Running" and key not in running:
                    running[key] = now
                    started = (status.get("containerStatuses") or [{}])[0].get(
                        "state", {}).get("running", {}).get("startedAt")
                    if started:
                        transitions.append(now - calendar.timegm(time.strptime(
                            started, "%Y-%m-%dT%H:%M:%SZ")))
                    if len(running) + len(failed) >= expected:
                        w.stop()
                        break
        except client.ApiException as exc:
            if exc.status != 410:
                raise
            relists += 1
            rv = api.list_pod_for_all_namespaces(limit=1).metadata.resource_version
        reconnects += 1
    results.put({"bound": bound, "running": running, "failed": len(failed), "events": events,
                 "reconnects": reconnects - 1, "relists": relists,
                 "transitions": transitions})


# creators and binders -----------------------------------------------------------------------

def pod_body(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "busybox:1.36",
                                     "resources": {"requests": {"cpu": "100m"}}}]}}


def worker_main(kubeconfig: str, kind: str, items: list[tuple[str, str, str]], threads: int,
                results: Any) -> None:
    """Create (kind=create) or bind (kind=bind) `items` (namespace, name, node) with `threads`
    threads; report per-item send times for binds and any errors."""
    api = new_api(Path(kubeconfig), threads + 2)
    sent: dict[str, float] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def run(chunk: list[tuple[str, str, str]]) -> None:
        local: dict[str, float] = {}
        for ns, name, node in chunk:
            try:
                if kind == "create":
                    resp = api.create_namespaced_pod(ns, pod_body(name),
                                                     _preload_content=False)
                else:
                    body = {"apiVersion": "v1", "kind": "Binding",
                            "metadata": {"name": name},
                            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
                    local[ns + "/" + name] = time.time()
                    resp = api.create_namespaced_pod_binding(name, ns, body,
                                                             _preload_content=False)
                resp.read()  # the raw answer: read it so that the connection is reused
                resp.release_conn()
            except Exception as exc:  # report, keep going
                with lock:
                    errors.append(f"{kind} {ns}/{name}: {exc!r}"[:300])
        with lock:
            sent.update(local)

    chunks = [items[i::threads] for i in range(threads)]
    pool = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put({"sent": sent, "errors": errors})


def run_phase(ctx: Any, kubeconfig: Path, kind: str, items: list[tuple[str, str, str]],
              procs: int, threads: int) -> tuple[float, dict[str, float], list[str]]:
    results = ctx.Queue()
    workers = [ctx.Process(target=worker_main, args=(str(kubeconfig), kind, items[i::procs],
                                                     threads, results)) for i in range(procs)]
    started = time.monotonic()
    for w in workers:
        w.start()
    sent: dict[str, float] = {}
    errors: list[str] = []
    for _ in workers:
        out = results.get()
        sent.update(out["sent"])
        errors += out["errors"]
    elapsed = time.monotonic() - started
    for w in workers:
        w.join()
    return elapsed, sent, errors


# main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=50_000)
    parser.add_argument("--nodes-profile", type=Path, default=LARGE_PROFILE)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--procs", type=int, default=2,
                        help="client worker processes (each with --threads threads)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--kubesim-arg", action="append", default=[],
                        help="extra kubesim command line argument (repeatable)")
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="kubesim-bench-") as tmp:
        proc, kubeconfig, url = start_kubesim(args.nodes_profile, Path(tmp), args.kubesim_arg)
        try:
            return bench(ctx, args, proc, kubeconfig, url)
        finally:
            proc.send_signal(signal.SIGINT)  # a clean stop (writes the cProfile output)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def bench(ctx: Any, args: argparse.Namespace, proc: subprocess.Popen, kubeconfig: Path,
          url: str) -> int:
    api = new_api(kubeconfig, 4)
    nodes = [n.metadata.name for n in api.list_node().items]
    rss_idle = peak_rss_bytes(proc.pid)
    namespaces = [f"bench-{i}" for i in range(args.namespaces)]
    for ns in namespaces:
        api.create_namespace({"metadata": {"name": ns}})
    start_rv = api.list_pod_for_all_namespaces(limit=1).metadata.resource_version
    items = [(namespaces[i % len(namespaces)], f"pod-{i:06d}", nodes[i % len(nodes)])
             for i in range(args.pods)]
    print(f"kubesim pid {proc.pid} at {url}: {len(nodes)} nodes from {args.nodes_profile}; "
          f"{args.pods} pods, {args.procs} client processes x {args.threads} threads, "
          f"2 watchers", flush=True)

    results = ctx.Queue()
    watchers = []
    for _ in range(2):
        ready = ctx.Event()
        w = ctx.Process(target=watcher_main, args=(str(kubeconfig), start_rv, args.pods,
                                                   args.timeout, ready, results))
        w.start()
        ready.wait(60)
        watchers.append(w)
    time.sleep(0.5)  # let both watches open

    t0 = time.monotonic()
    cpu0 = cpu_seconds(proc.pid)
    create_s, _, create_errors = run_phase(ctx, kubeconfig, "create", items, args.procs,
                                           args.threads)
    print(f"created {args.pods} pods in {create_s:.1f} s", flush=True)
    cpu1 = cpu_seconds(proc.pid)
    bind_start_wall = time.time()
    bind_s, sent, bind_errors = run_phase(ctx, kubeconfig, "bind", items, args.procs,
                                          args.threads)
    cpu2 = cpu_seconds(proc.pid)
    print(f"bound {args.pods} pods in {bind_s:.1f} s", flush=True)

    outs = [results.get(timeout=args.timeout + 60) for _ in watchers]
    for w in watchers:
        w.join(10)
    all_running_wall = max((max(o["running"].values(), default=0.0) for o in outs),
                           default=0.0)
    rss_peak = peak_rss_bytes(proc.pid)
    total_s = time.monotonic() - t0

    latencies = [(o["bound"][key] - t) * 1000 for o in outs for key, t in sent.items()
                 if key in o["bound"]]
    running_counts = [len(o["running"]) for o in outs]
    transitions = [x for o in outs for x in o["transitions"]]
    creates = args.pods / create_s
    binds = args.pods / bind_s
    p50, p99 = pct(latencies, 50), pct(latencies, 99)
    rss_gib = rss_peak / 2**30
    until_running = all_running_wall - bind_start_wall + create_s if all_running_wall else \
        float("nan")

    def row(name: str, value: str, target: str, ok: bool | None) -> None:
        mark = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"  {name:<38} {value:>14}   {target:<14} {mark}")

    print()
    print(f"kubesim benchmark: {args.pods} pods on {len(nodes)} nodes "
          f"({args.procs}x{args.threads} client threads, 2 watchers, {os.cpu_count()} cores)")
    row("creates/s", f"{creates:,.0f}", ">= 1,000", creates >= TARGETS["creates"])
    row("binds/s", f"{binds:,.0f}", ">= 1,000", binds >= TARGETS["binds"])
    row("time until all Running (s)", f"{until_running:,.1f}", "", None)
    row("  of which after the last bind (s)",
        f"{all_running_wall - bind_start_wall - bind_s:,.1f}", "", None)
    row("bind -> watch event p50 (ms)", f"{p50:,.1f}", "", None)
    row("bind -> watch event p99 (ms)", f"{p99:,.1f}", "<= 250", p99 <= TARGETS["watch_p99_ms"])
    row("kubelet start -> watch event p50/p99 (s)",
        f"{pct(transitions, 50):.1f}/{pct(transitions, 99):.1f}", "(1 s resolution)", None)
    row("kubesim CPU busy: create / bind phase",
        f"{(cpu1 - cpu0) / create_s:.0%} / {(cpu2 - cpu1) / bind_s:.0%}", "(of one core)", None)
    with contextlib.suppress(OSError):
        load = os.getloadavg()
        row("machine load average (1, 5 min)", f"{load[0]:.1f}, {load[1]:.1f}", "", None)
    row("kubesim peak RSS (GiB)", f"{rss_gib:,.2f}", "<= 2", rss_gib <= TARGETS["rss_gib"])
    row("kubesim RSS before load (MiB)", f"{rss_idle / 2**20:,.0f}", "", None)
    row("watch events per watcher", ", ".join(f"{o['events']:,}" for o in outs), "", None)
    row("watch reconnects / re-lists", ", ".join(f"{o['reconnects']}/{o['relists']}"
                                                 for o in outs), "", None)
    row("pods seen Running per watcher", ", ".join(f"{c:,}" for c in running_counts),
        f"{args.pods:,}", all(c == args.pods for c in running_counts))
    row("pods rejected by kubelets (Failed)", ", ".join(str(o["failed"]) for o in outs), "0",
        all(o["failed"] == 0 for o in outs))
    row("errors (create, bind)", f"{len(create_errors)}, {len(bind_errors)}", "0, 0",
        not create_errors and not bind_errors)
    row("wall time (s)", f"{total_s:,.1f}", "", None)
    for err in (create_errors + bind_errors)[:5]:
        print("   ", err)
    with contextlib.suppress(Exception):
        stats = json.loads(urllib.request.urlopen(url + "/api/v1/pods?limit=1",
                                                  timeout=5).read())
        print(f"  final resourceVersion {stats['metadata']['resourceVersion']}")
    ok = (creates >= TARGETS["creates"] and binds >= TARGETS["binds"]
          and p99 <= TARGETS["watch_p99_ms"] and rss_gib <= TARGETS["rss_gib"]
          and all(c == args.pods for c in running_counts))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
