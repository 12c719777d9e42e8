"""The pure rules of lifecycle's shards: which shard a project is in, and which shards a
replica takes and lets go."""

import pytest

from fairway_lifecycle.core.shards import Look, Moves, fair_share, moves, shard_of


def test_a_project_is_always_in_the_same_shard_and_projects_spread():
    assert shard_of("team-a", 16) == shard_of("team-a", 16)
    assert 0 <= shard_of("team-a", 16) < 16
    spread = {shard_of(f"project-{i}", 16) for i in range(200)}
    assert len(spread) == 16


@pytest.mark.parametrize(("shards", "replicas", "share"), [
    (16, 1, 16), (16, 2, 8), (16, 3, 6), (16, 0, 16), (4, 8, 1),
])
def test_fair_share(shards, replicas, share):
    assert fair_share(shards, replicas) == share


def look(held=(), free=None, replicas=1, over_since=None, now=100.0, shards=4, start=0):
    return Look(frozenset(held), dict(free or {}), replicas, shards, over_since, now, start)


@pytest.mark.parametrize(("case", "expected"), [
    # alone: takes every free shard, oldest free first
    (look(free={2: 99.0, 0: 98.0, 1: 98.0, 3: 99.5}), Moves((0, 1, 2, 3), ())),
    # two replicas: up to its share of two
    (look(held={0}, free={2: 99.0, 3: 99.0}, replicas=2), Moves((2,), ())),
    # at its share: a shard free for long enough is taken anyway (a dead replica's)
    (look(held={0, 1}, free={2: 99.0, 3: 90.0}, replicas=2), Moves((3,), ())),
    # over its share, and nothing free: lets the extra ones go once settled...
    (look(held={0, 1, 2}, replicas=2, over_since=80.0), Moves((), (2,))),
    (look(held={0, 1, 2, 3}, replicas=3, over_since=80.0), Moves((), (2, 3))),
    # replicas starting together begin at different shards
    (look(free={0: 99.0, 1: 99.0, 2: 99.0, 3: 99.0}, replicas=2, start=2), Moves((2, 3), ())),
    # ... not before
    (look(held={0, 1, 2}, replicas=2, over_since=95.0), Moves((), ())),
    # over its share while shards are free: keeps them (they may be a dead replica's)
    (look(held={0, 1, 2}, free={3: 99.0}, replicas=2, over_since=10.0), Moves((), ())),
    # at its share, nothing free: nothing moves
    (look(held={0, 1}, replicas=2), Moves((), ())),
])
def test_moves(case, expected):
    assert moves(case, orphan_seconds=4.0, settle_seconds=10.0) == expected
