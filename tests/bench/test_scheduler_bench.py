"""`make bench-scheduler` runs: every shape, at a hundredth of its size, prints its figures."""

import pytest

from tests.bench import scheduler_bench


def test_every_shape_runs_small(capsys):
    assert scheduler_bench.main(["--scale", "0.01"]) == 0
    out = capsys.readouterr().out
    for number in range(1, 6):
        assert f"{number}. " in out
    assert "KAI's scale" in out and "of which snapshot" in out


def test_kais_scale_decided_again_prints_the_least_time(capsys):
    assert scheduler_bench.main(["--scale", "0.01", "--shape", "5", "--cycles", "2",
                                 "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "decide done again 2 more times per cycle: least CPU time median" in out


def test_kais_scale_times_named_steps_per_cycle(capsys):
    steps = ["fairway_scheduler.core.cycle:_decide",
             "fairway_scheduler.core.actions.allocate:Allocate._told",
             "fairway_scheduler.service:SchedulerService._outcome"]
    assert scheduler_bench.main(["--scale", "0.01", "--shape", "5", "--cycles", "3",
                                 "--steps", *steps]) == 0
    out = capsys.readouterr().out
    for step in steps:
        assert f"   step {step}: CPU median " in out
    assert "fairway_scheduler.core.cycle:_decide: CPU median" in out and " 1 calls" in out
    # the functions are themselves again afterwards
    from fairway_scheduler.core import cycle
    assert not hasattr(cycle._decide, "__wrapped__")


def test_kais_scale_churn_sets_what_finishes_and_arrives_per_cycle(capsys):
    assert scheduler_bench.main(["--scale", "0.01", "--shape", "5", "--cycles", "2",
                                 "--churn", "0"]) == 0
    out = capsys.readouterr().out
    assert "0 finishing and as many arriving per cycle" in out


def test_a_negative_churn_is_refused_with_why(capsys):
    with pytest.raises(SystemExit):
        scheduler_bench.main(["--shape", "5", "--churn", "-1"])
    assert "--churn: workloads finishing per cycle cannot be negative, got -1" in (
        capsys.readouterr().err)


@pytest.mark.parametrize(("spec", "why"), [
    ("_decide", "expected module:Qualified.name"),
    ("fairway_scheduler.core.nowhere:x", "no module fairway_scheduler.core.nowhere"),
    ("fairway_scheduler.core.cycle:Nothing.here", "has no Nothing.here"),
])
def test_a_step_that_names_nothing_is_refused_with_why(spec, why):
    with pytest.raises(SystemExit, match=why):
        scheduler_bench.main(["--scale", "0.01", "--shape", "5", "--cycles", "1",
                              "--steps", spec])
