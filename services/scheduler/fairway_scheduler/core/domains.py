"""A pool's topology domains during a cycle: per level, the ready nodes that share their
labels down to it (see `topology` for how a workload is placed inside one)."""

from collections.abc import Callable

from fairway_scheduler.core.nodes import Domain, PoolNodes, natural


class PoolTopology:
    """One pool's domains per level, indexed once per cycle."""

    def __init__(self, levels: tuple[str, ...], pool: PoolNodes):
        self.levels = levels
        self.pool = pool
        self._domains: dict[int, list[Domain]] = {}

    def level_of(self, label: str | None) -> int | None:
        if label is None or label not in self.levels:
            return None
        return self.levels.index(label)

    def domains(self, level: int) -> list[Domain]:
        """The level's domains (ready nodes that carry every label down to it)."""
        found = self._domains.get(level)
        if found is None:
            labels = self.levels[:level + 1]
            groups: dict[tuple[str, ...], list] = {}
            for node in self.pool.nodes:
                key = tuple(node.labels.get(label) for label in labels)
                if None in key:
                    continue
                groups.setdefault(key, []).append(node)  # type: ignore[arg-type]
            found = self._domains[level] = [
                Domain(level, self.levels[level], key, nodes)
                for key, nodes in sorted(groups.items(), key=lambda e: [natural(v)
                                                                         for v in e[0]])]
        return found

    def covers(self, level: int) -> bool:
        """Every ready node of the pool carries the labels down to the level."""
        return sum(len(d.nodes) for d in self.domains(level)) == len(self.pool.nodes)

    def order(self, required: int | None, preferred: int | None, held: set[int],
              room: Callable[[Domain], bool] | None = None) -> list[Domain | None]:
        """Where to try, in order; None: anywhere in the pool. `room` skips domains that
        could not hold the pods anyway (a quick count, before any is tried)."""
        if required is not None and (preferred is None or preferred < required):
            levels: list[int | None] = [required]
        elif preferred is not None:
            lowest = required if required is not None else 0
            levels = list(range(preferred, lowest - 1, -1))
            if required is None:
                levels.append(None)
        else:
            return [None]
        out: list[Domain | None] = []
        sign = 1 if self.pool.gpu_strategy == "binpack" else -1
        for level in levels:
            if level is None:
                out.append(None)
                continue
            domains = [d for d in self.domains(level)
                       if held <= d.idxs and (room is None or room(d))]
            domains.sort(key=lambda d: sign * d.free_milli())  # stable: natural order next
            out.extend(domains)
        return out
