"""Fair share: water-filling, level by level, per pool and per resource.

Amounts are whole units of the resource's base unit (milli-GPUs, millicores, MiB), so the
result is exact and the same on every machine. Shares are handed out in `step`s: whole GPUs
(1,000 milli-GPUs) for GPUs, one base unit for CPU and memory; a queue whose whole remaining
request is smaller than its offer takes it as it is, so fractional requests count as fractions.

For the queues of one level (the departments and department-less projects of a pool, then the
projects of each department, sharing the department's fair share):

1. every queue gets `min(deserved, wanted)`, where `wanted` is what it requested capped by its
   limit; should those not all fit in what there is, that part is itself divided in rounds
   with the deserved amounts as weights;
2. what is left goes to the queues that still want more, in proportion to `overQuotaWeight`
   (0: none), in rounds.

**Rounds.** Each round every queue that still wants more is offered `left * weight / total
weight` (computed exactly, with fractions). If its remaining request is no larger than the
offer it takes all of it; otherwise it takes the offer rounded down to whole steps and
remembers what the rounding left (its remainder). Another round follows while some queue was
satisfied in the last one (what it did not need goes round again). Then the steps still left
go one at a time to the queues by largest remembered remainder (ties: the older queue, then the
name), never more than a queue still wants, until nothing is left or nobody wants more. So 8
GPUs over deserved 4 and 2 with over-quota weights 4 and 2, when both want more, are 5 and 3
(the 2 left over are offered as 1.333 and 0.667: one whole GPU to the first, and the last one
to the larger remainder), and shares add up to the capacity whenever the requests do.
"""

import math
from collections.abc import Mapping
from fractions import Fraction


def water_fill(total: int, wants: Mapping[str, int], weights: Mapping[str, float],
               step: int = 1, age: Mapping[str, int] | None = None) -> dict[str, int]:
    """Divide `total` units between queues wanting `wants` in proportion to `weights`, in
    whole `step`s. `age`: a queue's rank by creation (smaller is older) for ties.

    Exact rational arithmetic in integers: the weights are scaled to integers in the same
    proportions (`_scaled`), so an offer is `offered * weight / weight_sum` kept as its
    numerator over `weight_sum`. (A `Fraction` per step cost tens of milliseconds a cycle:
    every level of every pool and resource is filled anew each cycle.)"""
    grants = dict.fromkeys(wants, 0)
    want = {name: amount for name, amount in wants.items() if amount > 0 and weights[name] > 0}
    exact = _scaled({name: weights[name] for name in want})
    # what the rounding left of a queue's last offer, as (numerator, denominator)
    remainders: dict[str, tuple[int, int]] = {}
    left = total
    while left > 0 and want:
        weight_sum = sum(exact[name] for name in want)
        offered = left
        satisfied = False
        for name in sorted(want):
            offer = offered * exact[name]  # the offer is this over `weight_sum`
            if want[name] * weight_sum <= offer:
                given = want[name]
                satisfied = True
                remainders.pop(name, None)
            else:
                given = offer // (weight_sum * step) * step
                remainders[name] = (offer - given * weight_sum, weight_sum)
            grants[name] += given
            want[name] -= given
            left -= given
        want = {name: amount for name, amount in want.items() if amount > 0}
        if not satisfied:
            break
    rank = age or {}
    kept = {name: Fraction(*remainders[name]) if name in remainders else 0 for name in want}
    order = sorted(want, key=lambda n: (-kept[n], rank.get(n, 0), n))
    while left > 0 and order:
        for name in order:
            given = min(step, want[name], left)
            grants[name] += given
            want[name] -= given
            left -= given
            if left <= 0:
                break
        order = [name for name in order if want[name] > 0]
    return grants


def _scaled(weights: Mapping[str, float]) -> dict[str, int]:
    """Integers in the same proportions as the weights, exactly (a float is a fraction whose
    denominator is a power of two)."""
    exact = {name: Fraction(weight) for name, weight in weights.items()}
    denominator = math.lcm(*(f.denominator for f in exact.values())) if exact else 1
    return {name: f.numerator * (denominator // f.denominator) for name, f in exact.items()}


def fair_shares(total: int, deserved: Mapping[str, int], wanted: Mapping[str, int],
                weights: Mapping[str, float], step: int = 1,
                age: Mapping[str, int] | None = None) -> dict[str, int]:
    """One level: deserved first (capped by what is wanted), then the rest by weight."""
    first = {name: min(deserved[name], wanted[name]) for name in wanted}
    if sum(first.values()) > total:
        shares = water_fill(total, first, {name: deserved[name] for name in first}, step, age)
    else:
        shares = first
    left = total - sum(shares.values())
    more = water_fill(left, {name: wanted[name] - shares[name] for name in wanted}, weights,
                      step, age)
    return {name: shares[name] + more[name] for name in wanted}
