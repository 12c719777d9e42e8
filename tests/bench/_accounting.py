"""What a benchmark phase cost: CPU seconds per process tree, database transactions and NATS
messages, measured as the difference between two snapshots.

A process's CPU is that of its whole tree (PostgreSQL's backends are children of the
postmaster; a service may run under a launcher), including children that exited in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

# Fairway's own CPU: the five services and the servers they cannot do without. kubesim stands
# in for a Kubernetes API server and the client is the benchmark itself: shown, not summed.
FAIRWAY = ("submission", "policy", "scheduler", "lifecycle", "metrics", "nats", "postgres")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and all its descendants, alive or reaped."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:  # exited between the listing and now
            continue
        total += t.user + t.system
    # Children reaped by the root were added to its own counters on exit.
    try:
        t = root.cpu_times()
        total += t.children_user + t.children_system
    except psutil.NoSuchProcess:
        pass
    return total


@dataclass(frozen=True)
class Snapshot:
    cpu: dict[str, float]
    transactions: int | None
    nats_in_msgs: int | None
    stream_messages: int | None
    deliveries: dict[str, int] | None = None  # by durable consumer, redeliveries included
    kube_calls: dict[str, float] | None = None  # lifecycle's Kubernetes API calls by operation
    fetches: dict[str, float] | None = None  # by durable consumer, fetches that returned any


def _group(process: str) -> str:
    """What a process's CPU counts under: a replica (`submission-2`, `nats-3`) under its
    service, so a replicated stack's figures compare with one process each."""
    name, _, number = process.rpartition("-")
    return name if number.isdigit() and name in FAIRWAY else process


async def snapshot(pids: Mapping[str, int], nats_monitor_url: str | None, pg_conn,
                   lifecycle_urls: Sequence[str] = (),
                   service_urls: Sequence[str] = ()) -> Snapshot:
    """CPU by service; `nats_monitor_url` may name every server of a cluster, comma-separated
    (messages in are summed over them; the streams' messages read from the first);
    `lifecycle_urls`: the lifecycle processes' HTTP addresses (their Kubernetes API calls, from
    /metrics, summed); `service_urls`: every service process's (fetches per consumer)."""
    cpu: dict[str, float] = {}
    for name, pid in pids.items():
        cpu[_group(name)] = cpu.get(_group(name), 0.0) + tree_cpu_seconds(pid)
    # The client is this process alone: the embedded stack's processes are its children.
    own = psutil.Process().cpu_times()
    cpu["client"] = own.user + own.system
    transactions = None
    if pg_conn is not None:
        transactions = await pg_conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()")
    in_msgs = stream_messages = deliveries = None
    if nats_monitor_url:
        urls = nats_monitor_url.split(",")
        in_msgs = 0
        for url in urls:
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                in_msgs += (await http.get("/varz")).json()["in_msgs"]
        async with httpx.AsyncClient(base_url=urls[0], timeout=5) as http:
            stream_messages = (await http.get("/jsz")).json().get("messages")
            # /jsz's `messages` is what the streams hold now; with limits retention (ours)
            # nothing is removed during a run, so its difference counts the publishes.
            jsz = (await http.get("/jsz?consumers=true&config=true")).json()
            deliveries = consumer_deliveries(jsz)
    kube_calls = await lifecycle_kube_calls(lifecycle_urls) if lifecycle_urls else None
    fetches = await consumer_fetches(service_urls) if service_urls else None
    return Snapshot(cpu, transactions, in_msgs, stream_messages, deliveries, kube_calls,
                    fetches)


async def lifecycle_kube_calls(urls: Sequence[str]) -> dict[str, float] | None:
    """`fairway_lifecycle_kube_requests_total` by operation, summed over codes and processes;
    None when a process is not there (stopped for the API-alone run)."""
    return await counter_by_label(urls, "fairway_lifecycle_kube_requests", "operation",
                                  all_needed=True)


async def consumer_fetches(urls: Sequence[str]) -> dict[str, float]:
    """`fairway_consumer_fetches_total` by consumer, summed over the processes that answer
    (stopped ones, as in the API-alone run, count nothing)."""
    return await counter_by_label(urls, "fairway_consumer_fetches", "consumer") or {}


async def counter_by_label(urls: Sequence[str], family_name: str, label: str, *,
                           all_needed: bool = False) -> dict[str, float] | None:
    """A counter family's `_total` samples read from each process's /metrics, summed by one
    label over the other labels and the processes; a process that does not answer counts
    nothing, or (`all_needed`) makes the answer None."""
    found: dict[str, float] = {}
    for url in urls:
        try:
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                text = (await http.get("/metrics")).text
        except httpx.TransportError:
            if all_needed:
                return None
            continue
        for family in text_string_to_metric_families(text):
            if family.name != family_name:
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = sample.labels[label]
                    found[key] = found.get(key, 0.0) + sample.value
    return found


def consumer_deliveries(jsz: Mapping) -> dict[str, int]:
    """Messages each durable consumer was handed so far (its delivered sequence: every
    delivery, a redelivery too), from the monitor's /jsz?consumers=true&config=true."""
    found: dict[str, int] = {}
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            for consumer in stream.get("consumer_detail") or []:
                if not (consumer.get("config") or {}).get("durable_name"):
                    continue  # an ephemeral one: the benchmark's own watcher
                found[consumer["name"]] = consumer["delivered"]["consumer_seq"]
    return found


@dataclass(frozen=True)
class Cost:
    units: int
    cpu: dict[str, float]
    transactions: int | None
    nats_in_msgs: int | None
    stream_messages: int | None
    deliveries: dict[str, int] | None = None
    kube_calls: dict[str, float] | None = None
    fetches: dict[str, float] | None = None

    @property
    def fairway_cpu(self) -> float:
        return sum(self.cpu.get(name, 0.0) for name in FAIRWAY)

    def per_unit_ms(self, seconds: float) -> float:
        return 1000 * seconds / self.units if self.units else float("nan")

    def report(self, unit: str) -> list[str]:
        lines = [f"CPU per {unit} (ms)   " + "   ".join(
            f"{name} {self.per_unit_ms(self.cpu[name]):.2f}"
            for name in (*FAIRWAY, "kubesim", "client") if name in self.cpu)]
        lines.append(f"Fairway CPU          {self.per_unit_ms(self.fairway_cpu):.2f} ms per {unit}"
                     f" (five services + NATS + PostgreSQL; {self.fairway_cpu:.1f} s in all)")
        counts = []
        if self.transactions is not None:
            counts.append(f"{self.transactions / self.units:.1f} PostgreSQL transactions")
        if self.stream_messages is not None:
            counts.append(f"{self.stream_messages / self.units:.1f} JetStream messages stored")
        if self.nats_in_msgs is not None:
            counts.append(f"{self.nats_in_msgs / self.units:.1f} NATS messages in")
        if counts:
            lines.append(f"I/O per {unit:<12}" + ", ".join(counts))
        busy = sorted(((n, c) for n, c in (self.deliveries or {}).items() if c),
                      key=lambda nc: -nc[1])
        if busy:  # what each message costs is paid this many times: where batching pays
            lines.append(f"deliveries per {unit} " + "   ".join(
                f"{name} {count / self.units:.2f}" for name, count in busy))
            fetches = self.fetches or {}
            filled = [(n, c / fetches[n]) for n, c in busy if fetches.get(n)]
            if filled:  # a batch handler pays one transaction a fetch
                lines.append("messages per fetch  " + "   ".join(
                    f"{name} {size:.1f}" for name, size in filled))
        calls = sorted(((n, c) for n, c in (self.kube_calls or {}).items() if c),
                       key=lambda nc: -nc[1])
        if calls:  # what lifecycle asks of the API server (kubesim's CPU follows it)
            total = sum(c for _, c in calls) / self.units
            lines.append(f"Kubernetes calls per {unit} {total:.2f}: " + "   ".join(
                f"{name} {count / self.units:.2f}" for name, count in calls))
        return lines


def cost(before: Snapshot, after: Snapshot, units: int) -> Cost:
    def diff(a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else b - a

    return Cost(
        units=units,
        cpu={name: after.cpu[name] - before.cpu.get(name, 0.0) for name in after.cpu},
        transactions=diff(before.transactions, after.transactions),
        nats_in_msgs=diff(before.nats_in_msgs, after.nats_in_msgs),
        stream_messages=diff(before.stream_messages, after.stream_messages),
        deliveries=None if before.deliveries is None or after.deliveries is None else {
            name: count - before.deliveries.get(name, 0)
            for name, count in after.deliveries.items()},
        kube_calls=None if before.kube_calls is None or after.kube_calls is None else {
            name: count - before.kube_calls.get(name, 0.0)
            for name, count in after.kube_calls.items()},
        fetches=None if before.fetches is None or after.fetches is None else {
            name: count - before.fetches.get(name, 0.0)
            for name, count in after.fetches.items()},
    )
