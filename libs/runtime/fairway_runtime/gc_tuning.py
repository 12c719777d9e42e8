"""Garbage collector settings for a service that must answer quickly while holding a lot.

CPython's default thresholds (700, 10, 10) run a full collection whenever the objects that
survived young collections grow by a quarter of the long-lived ones. A service that keeps
thousands of pods or workloads as dicts and replaces them on every change (lifecycle's pod
cache, the scheduler's state) churns exactly such objects: measured on the lifecycle benchmark
(5,000 pods), a full collection every 2 to 3 s, each stopping the event loop for 200 to 500 ms on a
busy 2-core machine — the largest part of the p99 from a pod change to its phase event. Most
garbage here is freed by reference counting; the cycle collector only has to find the few
cycles (tasks, exceptions), and young collections find most of those.

`configure(thresholds)` sets larger thresholds at start (young collections of up to 20,000
objects, a full collection at most every 20 million net allocations); `freeze()` once started
moves everything loaded so far (modules, settings, the state read at start) out of every later
collection's way.
"""

import gc

DEFAULT_THRESHOLDS = "20000,50,20"


def parse_thresholds(value: str) -> tuple[int, int, int]:
    """'20000,50,20' -> (20000, 50, 20); ValueError naming what is wrong."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected three whole numbers 'young,middle,old' such as "
                         f"{DEFAULT_THRESHOLDS!r}, got {value!r}")
    young, middle, old = (int(p) for p in parts)
    if young == 0:
        raise ValueError("the first threshold must be above 0 (0 would turn collection off)")
    return young, middle, old


def configure(thresholds: str = DEFAULT_THRESHOLDS) -> None:
    gc.set_threshold(*parse_thresholds(thresholds))


def freeze() -> None:
    """Everything alive now is never scanned again (it is still freed by reference count)."""
    gc.collect()
    gc.freeze()
