"""The collector settings every service starts with (fairway_runtime.gc_tuning)."""

import gc

import pytest
from pydantic import ValidationError

from fairway_runtime import ServiceSettings, gc_tuning


def test_services_start_with_larger_thresholds_than_cpythons():
    assert gc_tuning.parse_thresholds(ServiceSettings().gc_thresholds) == (20_000, 50, 20)


@pytest.mark.parametrize(("value", "why"), [
    ("1,2", "three whole numbers"),
    ("a,b,c", "three whole numbers"),
    ("0,10,10", "above 0"),
])
def test_bad_thresholds_are_refused_naming_the_setting(monkeypatch, value, why):
    monkeypatch.setenv("FAIRWAY_GC_THRESHOLDS", value)
    with pytest.raises(ValidationError) as refused:
        ServiceSettings()
    assert "FAIRWAY_GC_THRESHOLDS" in str(refused.value)
    assert why in str(refused.value)


def test_configure_sets_and_freeze_moves_everything_alive_out_of_collections():
    before = gc.get_threshold()
    try:
        gc_tuning.configure("12345,6,7")
        assert gc.get_threshold() == (12345, 6, 7)
        gc_tuning.freeze()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
