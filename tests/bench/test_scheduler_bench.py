"""`make bench-scheduler` runs: every shape, at a hundredth of its size, prints its figures."""

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
