"""Fair share: water-filling, level by level, per pool and per resource.

Amounts are whole units of the resource's base unit (milli-GPUs, millicores, MiB), so the
result is exact and the same on every machine.

For the queues of one level (the departments and department-less projects of a pool, then the
projects of each department, sharing the department's fair share):

1. every queue gets `min(deserved, wanted)`, where `wanted` is what it requested capped by its
   limit; should those not all fit in what there is, that part is itself water-filled with the
   deserved amounts as weights;
2. what is left goes to the queues that still want more, in proportion to `overQuotaWeight`
   (0: none), again and again until nobody wants more or nothing is left.

**Rounding rule.** Each round a queue's exact share is `left * weight / total weight`
(computed exactly, with fractions); it gets the whole units of it (never more than it still
wants), and the units the flooring leaves over in that round go one each to the queues with
the largest fractional remainders (ties: larger weight, then name), as in the largest-remainder
method. So 10 units by weights 1, 1, 2 are 3, 2, 5; the shares add up to at most the capacity,
never above it, and no unit is left unassigned while someone wants it.
"""

from collections.abc import Mapping
from fractions import Fraction


def water_fill(total: int, wants: Mapping[str, int], weights: Mapping[str, float]
               ) -> dict[str, int]:
    """Divide `total` units between queues wanting `wants` in proportion to `weights`."""
    grants = dict.fromkeys(wants, 0)
    want = {name: amount for name, amount in wants.items() if amount > 0 and weights[name] > 0}
    exact = {name: Fraction(weights[name]) for name in want}
    left = total
    while left > 0 and want:
        weight_sum = sum(exact[name] for name in want)
        given = 0
        remainders = []
        for name in sorted(want):
            share = left * exact[name] / weight_sum
            whole = min(want[name], int(share))
            grants[name] += whole
            want[name] -= whole
            given += whole
            if want[name] > 0:
                remainders.append((-(share - int(share)), -exact[name], name))
        for _, _, name in sorted(remainders):
            if given >= left:
                break
            grants[name] += 1
            want[name] -= 1
            given += 1
        left -= given
        want = {name: amount for name, amount in want.items() if amount > 0}
    return grants


def fair_shares(total: int, deserved: Mapping[str, int], wanted: Mapping[str, int],
                weights: Mapping[str, float]) -> dict[str, int]:
    """One level: deserved first (capped by what is wanted), then the rest by weight."""
    first = {name: min(deserved[name], wanted[name]) for name in wanted}
    if sum(first.values()) > total:
        shares = water_fill(total, first, {name: deserved[name] for name in first})
    else:
        shares = first
    left = total - sum(shares.values())
    more = water_fill(left, {name: wanted[name] - shares[name] for name in wanted}, weights)
    return {name: shares[name] + more[name] for name in wanted}
