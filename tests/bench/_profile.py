"""`make bench BENCH_ARGS=--profile`: py-spy on every service while the throughput run lasts.

For each service it writes, under the profile directory:
  <service>.collapsed    the sampled stacks, one line each ("frame;frame;… count"): the input of
                         flame graph tools and of the two files below
  <service>.svg          a flame graph (open it in a browser: hover for names and shares)
  <service>-top.txt      the functions with the most samples, on CPU themselves and inclusive
"""

from __future__ import annotations

import html
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy (make install puts it in .venv/bin)")
    return found


class Profiler:
    def __init__(self, directory: Path, pids: dict[str, int], rate: int = 200) -> None:
        self.directory = directory
        self.pids = pids
        self.rate = rate
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        exe = py_spy()
        for name, pid in self.pids.items():
            self._procs[name] = subprocess.Popen(
                [exe, "record", "--pid", str(pid), "--rate", str(self.rate), "--format", "raw",
                 # --gil: the thread running Python (a waiting watch or worker thread
                 # would otherwise fill the profile with its blocking reads)
                 "--nonblocking", "--gil", "--output", str(self.directory / f"{name}.collapsed")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> list[str]:
        """Stop sampling, write the flame graphs and top lists; returns one line per service."""
        lines = []
        for name, proc in self._procs.items():
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            collapsed = self.directory / f"{name}.collapsed"
            if not collapsed.exists():
                lines.append(f"{name}: py-spy wrote nothing ({err.decode()[-300:].strip()})")
                continue
            stacks = read_collapsed(collapsed)
            (self.directory / f"{name}-top.txt").write_text(top_functions(name, stacks))
            (self.directory / f"{name}.svg").write_text(flame_graph(name, stacks))
            lines.append(f"{name}: {sum(stacks.values())} samples -> "
                         f"{self.directory / (name + '-top.txt')}, {name}.svg")
        return lines


def read_collapsed(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def _short(frame: str) -> str:
    # py-spy's frame: "function (path/to/module.py:line)"; the line number is dropped so one
    # function's samples add up, and site-packages paths are cut to the package.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def top_functions(name: str, stacks: Counter[tuple[str, ...]], limit: int = 40) -> str:
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks.items():
        short = [_short(f) for f in frames]
        own[short[-1]] += count
        for f in set(short):
            inclusive[f] += count
    out = [f"{name}: {total} samples on CPU", "", "self %   function"]
    out += [f"{100 * c / total:6.1f}   {f}" for f, c in own.most_common(limit)]
    out += ["", "inclusive %   function"]
    out += [f"{100 * c / total:6.1f}   {f}" for f, c in inclusive.most_common(limit)]
    return "\n".join(out) + "\n"


def flame_graph(name: str, stacks: Counter[tuple[str, ...]], width: int = 1600) -> str:
    """A plain SVG flame graph: one rectangle per (frame path), as wide as its samples."""
    tree: dict = {}
    for frames, count in stacks.items():
        node = tree
        for f in frames:
            entry = node.setdefault(_short(f), [0, {}])
            entry[0] += count
            node = entry[1]
    total = sum(stacks.values()) or 1
    row, rects, depth_max = 16, [], 0

    def walk(node: dict, x: float, depth: int) -> None:
        nonlocal depth_max
        depth_max = max(depth_max, depth)
        for frame, (count, children) in sorted(node.items()):
            w = width * count / total
            if w >= 0.5:
                label = html.escape(frame)
                hue = 20 + (hash(frame.partition(" (")[2]) % 40)
                rects.append(
                    f'<g><title>{label} — {count} samples, {100 * count / total:.1f}%</title>'
                    f'<rect x="{x:.1f}" y="{{y{depth}}}" width="{w:.1f}" height="{row - 1}" '
                    f'fill="hsl({hue},80%,60%)"/>'
                    + (f'<text x="{x + 2:.1f}" y="{{t{depth}}}" font-size="11">'
                       f'{label[: int(w / 7)]}</text>' if w > 30 else "") + "</g>")
                walk(children, x, depth + 1)
            x += w

    walk(tree, 0.0, 0)
    height = (depth_max + 2) * row
    body = "\n".join(rects)
    for d in range(depth_max + 1):  # root at the bottom, as flame graphs are drawn
        y = height - (d + 1) * row
        body = body.replace(f"{{y{d}}}", str(y)).replace(f"{{t{d}}}", str(y + row - 4))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="monospace"><text x="4" y="12">{html.escape(name)}: {total} samples'
            f"</text>\n{body}\n</svg>\n")
