"""The server-drawn SVG charts: axes scaled to the data, points placed in the window, and
each series drawn and named."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from fairway_submission.console.charts import Series, _ceiling, line_chart

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("value", "top"), [
    (0, 1), (0.3, 0.5), (1, 1), (3, 5), (7, 10), (12, 20), (64, 100), (150, 200)])
def test_the_y_axis_tops_at_a_round_number_at_or_above_the_largest_value(value, top):
    assert _ceiling(value) == pytest.approx(top)


def test_points_span_the_window_and_the_height():
    svg = line_chart("GPU allocation of pool a100", "GPUs", [
        Series("allocated", ((T0, 0.0), (T0 + timedelta(minutes=30), 4.0),
                             (T0 + timedelta(hours=1), 2.0)))], T0, T0 + timedelta(hours=1))
    [points] = re.findall(r'points="([^"]+)"', svg)
    xy = [tuple(map(float, p.split(","))) for p in points.split()]
    # 48 px left margin, 24 right, 760 wide; 24 top, 28 bottom, 240 high; top of axis 5
    assert xy == [(48.0, 212.0), (392.0, 61.6), (736.0, 136.8)]
    assert "<title" in svg and "GPU allocation of pool a100" in svg
    assert 'data-series="allocated"' in svg


def test_a_series_without_samples_is_named_but_not_drawn():
    svg = line_chart("t", "%", [Series("utilization", ()),
                                Series("quota", ((T0, 1.0),), dashed=True)],
                     T0, T0 + timedelta(minutes=15))
    assert svg.count("<polyline") == 1 and "stroke-dasharray" in svg
    assert ">utilization</text>" in svg


def test_labels_are_escaped():
    svg = line_chart("<x>", "GPUs", [Series("a&b", ((T0, 1.0),))], T0, T0 + timedelta(1))
    assert "&lt;x&gt;" in svg and "<x>" not in svg
    assert "a&amp;b" in svg
