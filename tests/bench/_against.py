"""`make bench BENCH_ARGS="--against REV"`: this tree and REV measured at the same time.

Run one after the other, two versions meet different machines: on a shared two-core machine
the CPU a workload costs drifts 5-10 % between runs a minute apart, more than most changes
worth making. Run at once, each on a stack of its own, both meet the same machine (each at
about half the throughput): per-process CPU per workload then compares within 1-2 %.

REV's `libs/` and `services/` are taken from git into a temporary directory and put first on
the Python path of its run (and so of the services it starts); both runs use the dependencies
installed here, and this tree's benchmark and devstack.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The lines of a run's output compared side by side (their first words).
COMPARED = ("throughput ", "submit -> Running", "CPU per workload", "Fairway CPU",
            "POST trainings", "CPU per request")


def _checkout(rev: str, into: Path) -> str:
    """REV's packages under `into`; the PYTHONPATH that puts them first."""
    archive = subprocess.run(["git", "archive", rev, "libs", "services"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    roots = sorted(p for p in (into / "libs").iterdir() if p.is_dir()) + sorted(
        p for p in (into / "services").iterdir() if p.is_dir())
    return os.pathsep.join(str(p) for p in roots)


def _without_against(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--against":
            skip = True
        elif not arg.startswith("--against="):
            out.append(arg)
    return out


def run_side_by_side(rev: str, argv: list[str], out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    args = _without_against(argv)
    with tempfile.TemporaryDirectory(prefix="fairway-against") as tmp:
        try:
            python_path = _checkout(rev, Path(tmp))
        except subprocess.CalledProcessError as exc:
            print(f"--against: git could not give {rev!r}: "
                  f"{exc.stderr.decode(errors='replace').strip()}", file=sys.stderr)
            return 2
        runs = {"this tree": (out_dir / "this-tree.log", {}),
                rev: (out_dir / "against.log", {"PYTHONPATH": python_path})}
        print(f"this tree and {rev} side by side (each on its own stack); output in {out_dir}",
              flush=True)
        procs = []
        for log, env in runs.values():
            with log.open("w") as sink:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "tests.bench.e2e_bench", *args],
                    stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **env}))
        codes = [p.wait() for p in procs]
    width = max(len(name) for name in runs)
    outputs = {name: log.read_text().splitlines() for name, (log, _) in runs.items()}
    for prefix in COMPARED:
        lines = [f"{name:<{width}}  {line}" for name, output in outputs.items()
                 for line in output if line.startswith(prefix)]
        if lines:
            print("\n".join(lines), end="\n\n")
    for (name, (log, _)), code in zip(runs.items(), codes, strict=True):
        if code:
            print(f"{name}: the run ended with {code}; see {log}")
    return max(codes)
