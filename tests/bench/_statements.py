"""`make bench BENCH_ARGS=--statements`: every SQL statement PostgreSQL ran during the
throughput run, from its own log, grouped by statement text: how many per workload and how
long each took there (server time, the lock waits in it included).

The log is switched on for the run alone (`log_min_duration_statement = 0`, reloaded without a
restart) and off again after it; writing it costs the server some CPU, so the CPU figures of a
run with --statements are a little higher than without.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

# "... LOG:  duration: 0.123 ms  execute __asyncpg_stmt_1__: SELECT ..." (or "statement:",
# "bind ...:", "parse ...:"); the statement may go on over the following lines.
_ENTRY = re.compile(r"LOG:\s+duration: ([0-9.]+) ms\s+(parse|bind|execute|statement)"
                    r"(?: [^:]*)?: (.*)")
_LOG_LINE = re.compile(r"^\S+ \S+ \S+ \[\d+\]|^\d{4}-\d\d-\d\d ")


async def start(pg) -> None:
    await pg.execute("ALTER SYSTEM SET log_min_duration_statement = 0")
    await pg.execute("SELECT pg_reload_conf()")


async def stop(pg) -> None:
    await pg.execute("ALTER SYSTEM RESET log_min_duration_statement")
    await pg.execute("SELECT pg_reload_conf()")


def summarise(log: Path, offset: int, units: int, top: int = 25) -> list[str]:
    """The statements logged after byte `offset` of `log`, most server time first."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    spent: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    current: tuple[str, float, list[str]] | None = None

    def close() -> None:
        if current is not None:
            step, ms, lines = current
            sql = " ".join(" ".join(lines).split())[:110]
            entry = spent[(step, sql)]
            entry[0] += 1
            entry[1] += ms

    for line in text.splitlines():
        m = _ENTRY.search(line)
        if m:
            close()
            current = (m.group(2), float(m.group(1)), [m.group(3)])
        elif current is not None and not _LOG_LINE.match(line):
            current[2].append(line.strip())
        else:
            close()
            current = None
    close()
    total_ms = sum(ms for _, ms in spent.values())
    count = sum(n for n, _ in spent.values())
    lines = [f"statements           {count / units:.1f} per workload (parse, bind and execute "
             f"apart), {total_ms / units:.2f} ms of server time per workload"]
    ranked = sorted(spent.items(), key=lambda kv: -kv[1][1])
    for (step, sql), (n, ms) in ranked[:top]:
        lines.append(f"  {ms / units:6.3f} ms  {n / units:5.2f}x  {step:<9} {sql}")
    return lines


_TABLES = ("SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del "
           "FROM pg_stat_user_tables")


async def table_writes(pg) -> dict[str, tuple[int, int, int, int]]:
    """Rows inserted, updated, updated in place (HOT: no index touched) and deleted so far,
    by table (the statistics lag their writes by up to a second: read after a pause)."""
    await pg.execute("SELECT pg_stat_clear_snapshot()")
    return {row[0]: tuple(row[1:]) for row in await pg.fetch(_TABLES)}


def writes_report(before: dict, after: dict, units: int) -> list[str]:
    """Row writes per workload by table, the busiest first."""
    rows = []
    for table, now in after.items():
        was = before.get(table, (0, 0, 0, 0))
        ins, upd, hot, dele = (a - b for a, b in zip(now, was, strict=True))
        if ins or upd or dele:
            rows.append((ins + upd + dele, table, ins, upd, hot, dele))
    lines = ["row writes per workload (inserted, updated of which in place, deleted):"]
    for _, table, ins, upd, hot, dele in sorted(rows, reverse=True)[:15]:
        lines.append(f"  {table:<34} {ins / units:5.2f}   {upd / units:5.2f} ({hot / units:5.2f})"
                     f"   {dele / units:5.2f}")
    return lines
