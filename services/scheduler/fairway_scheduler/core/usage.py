"""Time-aware fairness: each queue's usage history, and over-quota weights corrected by it.

A snapshot of fair share treats a project that ran 200 GPUs all week like one that ran none.
With time-aware fairness on (per cluster, or per node pool), the over-quota part of fair
share is divided by *adjusted* weights instead: among the queues of one level (the top queues
of a pool, or the projects of one department), with `W` a queue's over-quota weight over the
sum of its siblings' and `U` its usage over the sum of its siblings' usage,

    P = max(0, W + k * (W - U))

(KAI Scheduler's documented formula). A queue that used less than its weighted share gets
more than its weight, one that used more gets less; deserved quota is never touched (only the
over-quota division reads weights). Nobody used anything: the weights as they are.

`UsageHistory` holds what each queue (project and department, per node pool) held over time:
GPU-, CPU- and memory-seconds (GPUs x seconds, millicores x seconds, MiB x seconds) in
buckets of `bucket_seconds` aligned on the epoch. The caller (the service, the simulator)
accrues each cycle's allocated amounts over the time since the last cycle and passes the
cycle's time: nothing here reads a clock. `usage()` reads it through a window:

- sliding: the last `window_seconds` before now;
- tumbling: since the start of the current window (windows of `window_seconds` from the
  epoch), so usage drops to nothing when a new window starts;

and, with `half_life_seconds` > 0, each bucket's amount counts `0.5 ** (age / half_life)`,
age measured from the middle of the bucket (the part inside the window) to now.
"""

import math
from collections.abc import Iterable, Iterator
from datetime import datetime

from fairway_scheduler.core.model import TUMBLING, QueueStatus, TimeAwareFairness

DEFAULT_BUCKET_SECONDS = 3600.0

QueueKey = tuple[str, str, str]  # (kind, name, pool)
Amounts = tuple[float, float, float]  # gpu, cpu, memory (per second, or seconds of each)



class UsageHistory:
    """Resource-seconds per queue and bucket; `pending` collects what was added since the last
    `drain()`, for a caller that writes it to a database in batches."""

    def __init__(self, bucket_seconds: float = DEFAULT_BUCKET_SECONDS):
        if bucket_seconds <= 0:
            raise ValueError("bucket_seconds must be positive")
        self.bucket_seconds = bucket_seconds
        self.buckets: dict[QueueKey, dict[int, list[float]]] = {}
        self.pending: dict[tuple[QueueKey, int], list[float]] = {}
        # Per queue, the decayed sum of the buckets wholly inside its last window read (the
        # window's settings and edge buckets as the key): the next cycle, still in the same
        # bucket, reads only the two edge buckets. Dropped when an older bucket changes.
        self._newest: dict[QueueKey, int] = {}
        self._inner: dict[QueueKey, tuple[tuple, Amounts]] = {}
        self._decays: dict[tuple[float, float, int], list[float]] = {}

    def add(self, key: QueueKey, bucket: int, amounts: Iterable[float], *,
            record: bool = True) -> None:
        """Add resource-seconds to one bucket (`record` False: loaded, not to be written)."""
        newest = self._newest.get(key)
        if newest is None or bucket > newest:
            self._newest[key] = bucket
        elif bucket < newest:
            self._inner.pop(key, None)
        held = self.buckets.setdefault(key, {}).setdefault(bucket, [0.0, 0.0, 0.0])
        out = self.pending.setdefault((key, bucket), [0.0, 0.0, 0.0]) if record else None
        for r, value in enumerate(amounts):
            held[r] += value
            if out is not None:
                out[r] += value

    def hold(self, key: QueueKey, rates: Amounts, start: float, end: float) -> None:
        """`rates` (GPUs, millicores, MiB) held from `start` to `end` (epoch seconds), split
        over the buckets the interval crosses."""
        if end <= start or not any(rates):
            return
        size = self.bucket_seconds
        t = start
        while t < end:
            bucket = math.floor(t / size)
            upto = min(end, (bucket + 1) * size)
            seconds = upto - t
            self.add(key, bucket, (rate * seconds for rate in rates))
            t = upto

    def accrue(self, statuses: Iterable[QueueStatus], since: datetime, until: datetime
               ) -> None:
        """Every queue held what `statuses` (a cycle's queue status) say it allocated from
        `since` to `until`."""
        start, end = since.timestamp(), until.timestamp()
        if end <= start:
            return
        for s in statuses:
            rates = (s.gpu.allocated, s.cpu.allocated, s.memory.allocated)
            if any(rates):
                self.hold((s.kind, s.name, s.pool), rates, start, end)

    def drain(self) -> list[tuple[QueueKey, int, list[float]]]:
        """What was added since the last drain, and forget it (the caller writes it)."""
        out = [(key, bucket, amounts) for (key, bucket), amounts in self.pending.items()]
        self.pending = {}
        return out

    def forget_before(self, when: datetime) -> None:
        """Drop buckets that end before `when` (older than any window can reach)."""
        first = math.floor(when.timestamp() / self.bucket_seconds)
        for key in list(self.buckets):
            kept = {b: a for b, a in self.buckets[key].items() if b >= first}
            if kept:
                self.buckets[key] = kept
            else:
                del self.buckets[key]
                self._newest.pop(key, None)
            self._inner.pop(key, None)

    def keys(self) -> Iterator[QueueKey]:
        return iter(self.buckets)

    def _decay(self, size: float, half_life: float, span: int) -> list[float]:
        """What a whole bucket `i` buckets before the current one counts, seen from the
        current one's start: 0.5 ** ((i - 0.5) * size / half_life) (1 without a half-life)."""
        key = (size, half_life, span)
        table = self._decays.get(key)
        if table is None:
            table = self._decays[key] = [
                0.5 ** ((i - 0.5) * size / half_life) if half_life > 0 else 1.0
                for i in range(span + 1)]
        return table

    def usage(self, key: QueueKey, now: datetime, settings: TimeAwareFairness) -> Amounts:
        """The queue's resource-seconds inside the window ending at `now`, decayed."""
        buckets = self.buckets.get(key)
        if not buckets:
            return (0.0, 0.0, 0.0)
        end = now.timestamp()
        if settings.window_type == TUMBLING:
            start = math.floor(end / settings.window_seconds) * settings.window_seconds
        else:
            start = end - settings.window_seconds
        size = self.bucket_seconds
        first, last = math.floor(start / size), math.floor(end / size)
        half_life = settings.half_life_seconds
        # The buckets wholly inside (first < b < last), decayed as seen from the start of the
        # current bucket; kept for the next read in the same bucket.
        signature = (settings, first, last)
        kept = self._inner.get(key)
        if kept is not None and kept[0] == signature:
            inner = kept[1]
        else:
            decay = self._decay(size, half_life, last - first)
            g = c = m = 0.0
            for bucket, amounts in buckets.items():
                if first < bucket < last:
                    part = decay[last - bucket]
                    g += amounts[0] * part
                    c += amounts[1] * part
                    m += amounts[2] * part
            inner = (g, c, m)
            self._inner[key] = (signature, inner)
        since = 0.5 ** ((end - last * size) / half_life) if half_life > 0 else 1.0
        g, c, m = (v * since for v in inner)
        for bucket in {first, last}:
            amounts = buckets.get(bucket)
            if amounts is None:
                continue
            # What a bucket holds is taken as spread evenly over its time up to now (the
            # current bucket is filled only that far); the part inside the window counts.
            low = bucket * size
            filled = min((bucket + 1) * size, end)
            inside = filled - max(low, start)
            if inside <= 0 or filled <= low:
                continue
            part = 1.0 if low >= start else inside / (filled - low)
            if half_life > 0:
                middle = (max(low, start) + filled) / 2
                part *= 0.5 ** ((end - middle) / half_life)
            g += amounts[0] * part
            c += amounts[1] * part
            m += amounts[2] * part
        return (g, c, m)

def adjusted_weights(weights: list[float], usage: list[float], k: float
                     ) -> list[float] | None:
    """KAI's `P = max(0, W + k (W - U))` for each of one level's queues, W and U normalised
    over the level; None when there is nothing to correct (no usage, or no weight)."""
    total_weight = sum(w for w in weights if w > 0)
    total_usage = sum(u for u, w in zip(usage, weights, strict=True) if w > 0)
    if total_weight <= 0 or total_usage <= 0:
        return None
    out = []
    for w, u in zip(weights, usage, strict=True):
        if w <= 0:
            out.append(0.0)
            continue
        share = w / total_weight
        out.append(max(0.0, share + k * (share - u / total_usage)))
    return out
