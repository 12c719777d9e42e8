"""`make bench` itself, small: every run it makes (floor, throughput with profiles, offered
load, the API alone) completes on a fresh embedded stack and reports what docs/performance.md
says it reports. Benchmarks that nobody runs in CI rot."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_a_small_bench_runs_every_measurement_and_profiles_every_service(tmp_path):
    profiles = tmp_path / "profiles"
    result = subprocess.run(
        [sys.executable, "-m", "tests.bench.e2e_bench", "--count", "30", "--concurrency", "4",
         "--rate", "5", "--rate-seconds", "2", "--api-count", "30", "--profile",
         "--profile-dir", str(profiles), "--timeout", "120"],
        cwd=ROOT, capture_output=True, text=True, timeout=280)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert re.search(r"I/O floor +\d+ workloads/s", out)
    assert "completed            30   failed 0   unfinished 0" in out
    cpu = re.search(r"CPU per workload \(ms\) +(.*)", out).group(1)
    for process in ("submission", "policy", "scheduler", "lifecycle", "metrics", "nats",
                    "postgres", "kubesim", "client"):
        assert re.search(rf"{process} \d+\.\d\d", cpu), (process, cpu)
    assert re.search(r"I/O per workload +\d+\.\d PostgreSQL transactions", out)
    assert re.search(r"ratio to I/O floor +\d", out)
    assert re.search(r"offered load +5 workloads/s for 2 s, 0 errors", out)
    assert re.search(r"POST trainings +\d+ requests/s .* 0 errors", out)
    assert "summary (issue 22's targets)" in out
    assert re.search(r"messages per fetch +\S+ \d+\.\d", out)  # batches' fill, per consumer
    # what the scheduler said of the waiting, by code ("none" when nothing waited)
    assert re.search(r"pending reasons per workload +(none|\S+ \d+\.\d\d)", out)
    for run in ("throughput", "offered-load"):  # a profile of each run
        for service in ("submission", "policy", "scheduler", "lifecycle", "metrics", "kubesim"):
            top = (profiles / run / f"{service}-top.txt").read_text()
            assert "samples on CPU" in top and "inclusive %" in top
            assert (profiles / run / f"{service}.svg").read_text().startswith("<svg")
