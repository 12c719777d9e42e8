"""The supervisor's restart policy: exponential back-off with a cap, reset after a stable run,
crash loops reported but still retried."""

from fairway_devstack._supervision import RestartPolicy, RestartTracker

POLICY = RestartPolicy(
    first_delay=1, max_delay=8, stable_after=60, crash_loop_crashes=4, crash_loop_window=120
)


def crash_and_restart(tracker: RestartTracker, now: float) -> float:
    delay = tracker.crashed(now)
    assert not tracker.due(now + delay - 0.01)
    assert tracker.due(now + delay)
    tracker.restarted(now + delay)
    return delay


def test_back_off_doubles_up_to_the_cap():
    tracker = RestartTracker(POLICY)
    delays = [crash_and_restart(tracker, float(t)) for t in range(0, 60, 10)]
    assert delays == [1, 2, 4, 8, 8, 8]
    assert tracker.restarts == 6


def test_a_process_that_ran_long_enough_starts_again_from_the_first_delay():
    tracker = RestartTracker(POLICY)
    crash_and_restart(tracker, 0)
    crash_and_restart(tracker, 2)
    assert crash_and_restart(tracker, 5 + 60) == 1


def test_crashes_within_the_window_make_a_crash_loop_and_old_ones_are_forgotten():
    tracker = RestartTracker(POLICY)
    for t in (0, 10, 20):
        crash_and_restart(tracker, t)
        assert not tracker.crash_looping
    crash_and_restart(tracker, 30)
    assert tracker.crash_looping
    crash_and_restart(tracker, 200)  # the first four are older than the window
    assert not tracker.crash_looping


def test_a_restart_that_fails_counts_as_a_crash():
    tracker = RestartTracker(POLICY)
    assert tracker.crashed(0) == 1
    assert tracker.restart_failed(1) == 2
    assert tracker.due(3) and len(tracker.crashes) == 2
