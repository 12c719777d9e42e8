"""Line charts as SVG, drawn on the server from the telemetry API's samples: no chart library
and no script in the browser. Pure: samples in, markup out."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 24, 24, 28
COLOURS = ("#0b5cad", "#1a7f37", "#8250df", "#9a6700")


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[datetime, float], ...]
    dashed: bool = False


def _ceiling(value: float) -> float:
    """A round top for the y axis at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    step = 10.0 ** math.floor(math.log10(value))
    return next(step * f for f in (1, 2, 5, 10) if step * f >= value * (1 - 1e-9))


def line_chart(title: str, unit: str, series: Sequence[Series], start: datetime,
               end: datetime) -> str:
    """An SVG line chart of `series` over [start, end], with its y axis in `unit`; its
    title and a sentence for screen readers say what it shows."""
    span = max((end - start).total_seconds(), 1.0)
    top = _ceiling(max((v for s in series for _, v in s.points), default=0.0))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + inner_w * min(max((t - start).total_seconds() / span, 0.0), 1.0)

    def y(v: float) -> float:
        return TOP + inner_h * (1 - min(max(v / top, 0.0), 1.0))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'class="chart" role="img" aria-labelledby="{_id(title)}">'
             f'<title id="{_id(title)}">{escape(title)}</title>']
    for i in range(5):
        value = top * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" '
                     f'y2="{y(value):.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                     f'{value:g}</text>')
    for i in range(5):
        t = start + (end - start) * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
                     f'{t.strftime("%H:%M")}</text>')
    parts.append(f'<text x="{LEFT}" y="{TOP - 10}" class="unit">{escape(unit)}</text>')
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        if s.points:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                         f'stroke-width="2"{dash} data-series="{escape(s.label)}"/>')
        parts.append(f'<text x="{LEFT + 60 + 150 * i}" y="{TOP - 10}" '
                     f'style="fill: {colour}">{escape(s.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _id(title: str) -> str:
    return "chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())
