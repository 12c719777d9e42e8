"""The pieces `make bench` reports with: CPU per process tree, py-spy's stacks turned into top
functions and a flame graph, and the I/O floor against real servers."""

import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.bench._accounting import FAIRWAY, Snapshot, cost, tree_cpu_seconds
from tests.bench._floor import io_floor
from tests.bench._profile import flame_graph, read_collapsed, top_functions

BUSY = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass"


def test_a_process_tree_counts_its_children_alive_and_exited():
    # A parent that burns 0.3 s itself, runs a child that burns 0.3 s and exits, then waits.
    parent = subprocess.Popen([sys.executable, "-c", (
        BUSY.format(seconds=0.3) + "\nimport subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', {BUSY.format(seconds=0.3)!r}])\n"
        "import time; time.sleep(30)")])
    try:
        deadline = time.monotonic() + 20
        while tree_cpu_seconds(parent.pid) < 0.6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 0.6 <= tree_cpu_seconds(parent.pid) < 1.5
    finally:
        parent.kill()
        parent.wait()
    assert tree_cpu_seconds(parent.pid) == 0.0  # gone: nothing, not an error


def test_cost_divides_each_difference_by_the_workloads():
    before = Snapshot({"submission": 1.0, "nats": 2.0, "kubesim": 0.0, "client": 0.0},
                      100, 1000, 10)
    after = Snapshot({"submission": 2.0, "nats": 2.5, "kubesim": 1.0, "client": 3.0},
                     350, 1400, 60)
    spent = cost(before, after, units=50)
    assert spent.fairway_cpu == pytest.approx(1.5)  # kubesim and the client are not Fairway
    assert spent.per_unit_ms(spent.fairway_cpu) == pytest.approx(30.0)
    lines = spent.report("workload")
    assert "submission 20.00" in lines[0] and "client 60.00" in lines[0]
    assert "5.0 PostgreSQL transactions, 1.0 JetStream messages stored, 8.0 NATS" in lines[2]
    assert set(FAIRWAY) >= {"submission", "nats", "postgres"}


STACKS = """\
main (app.py:3);handle (fairway_x/service.py:10);execute (asyncpg/connection.py:5) 6
main (app.py:3);handle (fairway_x/service.py:10);validate (pydantic/main.py:7) 3
main (app.py:3);idle (app.py:9) 1
not a stack line
"""


def test_collapsed_stacks_give_self_and_inclusive_shares(tmp_path):
    path = tmp_path / "x.collapsed"
    path.write_text(STACKS)
    stacks = read_collapsed(path)
    assert sum(stacks.values()) == 10
    top = top_functions("x", stacks)
    assert "x: 10 samples on CPU" in top
    self_part, inclusive_part = top.split("inclusive %")
    assert "60.0   execute (asyncpg/connection.py)" in self_part
    assert "90.0   handle (fairway_x/service.py)" in inclusive_part
    assert "100.0   main (app.py)" in inclusive_part


def test_the_flame_graph_is_svg_with_one_box_per_frame_path():
    stacks = Counter({("main (a.py:1)", "f <x> (b.py:2)"): 3, ("main (a.py:1)",): 1})
    svg = flame_graph("svc", stacks)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<rect") == 2
    assert "f &lt;x&gt; (b.py) — 3 samples, 75.0%" in svg  # escaped, with its share
    assert "{y" not in svg and "{t" not in svg  # every row placed


@pytest.mark.infra
async def test_the_io_floor_commits_and_publishes_for_real(nats_url, database_url):
    rate = await io_floor(nats_url, database_url, count=40, concurrency=4, commits=2,
                          publishes=3)
    assert rate > 0


async def test_the_load_generators_client_keeps_alive_and_reconnects_when_closed():
    import asyncio
    import json

    from tests.bench._http import Connection

    accepted = []

    async def serve(reader, writer):
        accepted.append(writer)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            body = json.loads(await reader.readexactly(length))
            reply = json.dumps({"echo": body["n"]}).encode()
            close = body["n"] == 2  # the server ends the connection after this answer
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n%s\r\n%s" % (
                len(reply), b"Connection: close\r\n" if close else b"", reply))
            await writer.drain()
            if close:
                writer.close()
                return

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = Connection(f"http://127.0.0.1:{port}", {"Authorization": "Bearer t"})
    try:
        answers = [await connection.post_json("/x", {"n": n}) for n in range(1, 5)]
    finally:
        await connection.close()
        server.close()
    assert [(status, json.loads(body)["echo"]) for status, body in answers] == [
        (202, 1), (202, 2), (202, 3), (202, 4)]
    assert len(accepted) == 2  # kept alive for 1 and 2, a new connection after the close


def test_against_runs_the_same_arguments_and_puts_the_revisions_packages_first(tmp_path):
    from tests.bench._against import _checkout, _without_against

    assert _without_against(["--against", "main", "--count", "5", "--against=x", "--rate",
                             "0"]) == ["--count", "5", "--rate", "0"]
    path = _checkout("HEAD", tmp_path).split(":")
    assert str(tmp_path / "libs" / "bus") in path
    assert str(tmp_path / "services" / "lifecycle") in path
    assert (tmp_path / "services" / "lifecycle" / "fairway_lifecycle" / "controller.py").exists()
