"""The actions of a cycle, one module each: `allocate` (idle capacity, fairest queue first),
then the disruptive ones over the shared `solver` (release victims and retry): `consolidate`,
`reclaim`, `preempt`, and `stale_gang`. `core.cycle` runs them in that order."""
