"""Which replica drives which workloads: the pure rules of lifecycle's shards.

A workload belongs to the shard of its project (`shard_of`): a project's workloads all run in
its one namespace and its scheduling rules (time and idle GPU limits) are checked across
them, so one replica sees a project whole; a hash spreads projects over the shards without a
table to keep. The number of shards is fixed (a setting) and larger than the replicas ever
run, so shards move between replicas whole and no workload ever changes shard.

Each shard is one Kubernetes Lease. A replica takes free or expired shards up to its fair
share (the shards over the live replicas, rounded up), so shards spread over replicas; a shard
left free for longer than `orphan_seconds` is taken whatever the count (a dead replica's
shards are never left waiting for the membership to notice); a replica holding more than its
fair share for longer than `settle_seconds` (the membership has settled) lets the extra ones
go, for the replicas below their share to take.
"""

import math
import zlib
from dataclasses import dataclass


def shard_of(project: str, shards: int) -> int:
    """The shard of a project's workloads: CRC-32 of its name (stable across processes and
    versions, unlike Python's salted hash()) modulo the number of shards."""
    return zlib.crc32(project.encode()) % shards


def fair_share(shards: int, replicas: int) -> int:
    """The most shards one replica should hold when `replicas` are alive."""
    return math.ceil(shards / max(1, replicas))


@dataclass(frozen=True)
class Look:
    """What a replica knows at one round: the shards it holds, those nobody holds (and since
    when, on its own clock), the live replicas, and since when it has held more than its
    share (None: it does not)."""

    held: frozenset[int]
    free_since: dict[int, float]
    replicas: int
    shards: int
    over_since: float | None
    now: float
    start: int = 0  # where this replica starts looking (replicas starting together spread)


@dataclass(frozen=True)
class Moves:
    take: tuple[int, ...]
    release: tuple[int, ...]


def moves(look: Look, *, orphan_seconds: float, settle_seconds: float) -> Moves:
    """The shards to try to take and to let go this round."""
    share = fair_share(look.shards, look.replicas)
    room = share - len(look.held)
    free = sorted(look.free_since,
                  key=lambda s: (look.free_since[s], (s - look.start) % look.shards))
    take = list(free[:max(0, room)])
    take += [s for s in free[max(0, room):]
             if look.now - look.free_since[s] >= orphan_seconds]
    release: tuple[int, ...] = ()
    if (room < 0 and not free and look.over_since is not None
            and look.now - look.over_since >= settle_seconds):
        release = tuple(sorted(look.held)[room:])  # the extra ones, at once
    return Moves(tuple(take), release)
