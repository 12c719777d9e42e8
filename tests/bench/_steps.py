"""`--steps`: named functions wrapped with CPU timers, their time in each steady cycle.

A step is `module:Qualified.name` (`fairway_scheduler.core.actions.allocate:Allocate._told`,
`fairway_scheduler.service:SchedulerService._outcome`). Its time is inclusive: a wrapped step
that calls another counts both. The wrapper is looked up where it is called from: wrap a
function that its callers reach through its module or class (`cycle:_decide`, not the
`decide` the benchmark imported before). Comparing two versions step by step is steadier on a
noisy machine than comparing whole cycles: both runs measure the same work with the same
timer, and a step's share of the cycle does not move with the host's speed."""

import functools
import importlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any


class StepTimers:
    def __init__(self, specs: list[str]):
        self.specs = specs
        self._spent: dict[str, float] = defaultdict(float)
        self._calls: dict[str, int] = defaultdict(int)
        self.cycles: list[dict[str, tuple[float, int]]] = []  # per cycle: (seconds, calls)
        self._undo: list[tuple[Any, str, Any]] = []
        for spec in specs:
            self._wrap(spec)

    def _wrap(self, spec: str) -> None:
        module_name, _, qualname = spec.partition(":")
        if not module_name or not qualname:
            raise SystemExit(f"--steps {spec!r}: expected module:Qualified.name, such as "
                             "fairway_scheduler.core.cycle:_decide")
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError as e:
            raise SystemExit(f"--steps {spec!r}: no module {module_name} ({e})") from None
        *path, name = qualname.split(".")
        try:
            for part in path:
                owner = getattr(owner, part)
            raw = vars(owner)[name] if isinstance(owner, type) else getattr(owner, name)
        except (AttributeError, KeyError):
            raise SystemExit(f"--steps {spec!r}: {module_name} has no {qualname}") from None
        static = isinstance(raw, staticmethod)
        function: Callable = raw.__func__ if static else raw
        if not callable(function):
            raise SystemExit(f"--steps {spec!r}: {qualname} is not a function")
        spent, calls = self._spent, self._calls

        @functools.wraps(function)
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[spec] += time.process_time() - start
                calls[spec] += 1

        setattr(owner, name, staticmethod(timed) if static else timed)
        self._undo.append((owner, name, raw))

    def forget(self) -> None:
        """What was timed so far is not a steady cycle's (the burst before them)."""
        self._spent.clear()
        self._calls.clear()

    def cycle_done(self) -> None:
        self.cycles.append({spec: (self._spent.pop(spec, 0.0), self._calls.pop(spec, 0))
                            for spec in self.specs})

    def report(self) -> list[str]:
        """A line per step: its median CPU time per cycle and calls per cycle."""
        if not self.cycles:
            return []
        lines = []
        for spec in self.specs:
            seconds = statistics.median(cycle[spec][0] for cycle in self.cycles)
            calls = statistics.median(cycle[spec][1] for cycle in self.cycles)
            lines.append(f"   step {spec}: CPU median {seconds * 1000:.1f} ms a cycle, "
                         f"{calls:g} calls")
        return lines

    def restore(self) -> None:
        for owner, name, raw in reversed(self._undo):
            setattr(owner, name, raw)
        self._undo.clear()
