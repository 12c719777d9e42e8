"""Topology-aware placement: a workload's pods inside one domain of its pool's network.

A pool names its topology as node label keys, widest level first (zone, block, rack, host).
The nodes that share their values down to one level form a domain of that level (a rack is
one rack of one block of one zone: two racks named alike in two blocks are two domains); a
node without one of those labels belongs to no domain of that level or below.

A workload asks for a level:
- `required`: all its pods inside one domain of that level, or none placed (it waits, and the
  reason names the domain of that level that had room for the most of them);
- `preferred`: the smallest domain first, then level by level wider, up to the required level
  (or, without one, the whole pool).
Pods it already holds pin it: more of its pods go only to domains that hold those.

In one level, domains are tried by their free GPUs: the fullest first when the pool binpacks
(large domains stay whole for the large gangs), the emptiest first when it spreads; then in
natural order of their names. Placement goes through a `Statement` narrowed to the domain
(`Statement.within`), so the disruptive actions, which place through the same helper, choose
their victims inside the domain that will hold the gang (victims elsewhere are pruned).
"""

from collections.abc import Callable

from fairway_scheduler.core import reasons
from fairway_scheduler.core.domains import PoolTopology
from fairway_scheduler.core.framework import Request, Statement
from fairway_scheduler.core.model import PendingCode
from fairway_scheduler.core.nodes import Domain


def any_node_will_do(topology: PoolTopology | None, asked: tuple[str | None, str | None],
                     pods: int, holds: bool) -> bool:
    """One pod that holds nothing yet sits inside one domain of every level wherever it goes:
    placed like any pod, where the pool's nodes all carry the labels it requires (else it
    needs the topology's own placement, which keeps it off the unlabelled ones)."""
    if pods != 1 or holds:
        return False
    if asked[0] is None:
        return True
    if topology is None:
        return False
    level = topology.level_of(asked[0])
    return level is not None and topology.covers(level)


class WholeRoom:
    """A quick count for pods of whole GPUs: how many a domain's free devices could hold (CPU,
    memory and pod slots aside); called as a test, whether they could hold `pods`."""

    def __init__(self, devices: int, pods: int):
        self.devices, self.pods = devices, pods

    def count(self, domain: Domain, upto: int) -> int:
        fit, devices = 0, self.devices
        for node in domain.gpu_nodes:
            fit += node.whole // devices
            if fit >= upto:
                return fit
        return fit

    def __call__(self, domain: Domain) -> bool:
        return self.count(domain, self.pods) >= self.pods


def room_for(request: Request, pods: int, apart: bool) -> WholeRoom | None:
    """A quick count of whether a domain could hold the pods (None: no quick count): for pods
    of whole GPUs, the domain's free devices (a master sized apart aside)."""
    workers = pods - 1 if apart else pods
    if request.fraction or not request.devices or workers < 1:
        return None
    return WholeRoom(request.devices, workers)


def levels_asked(topology: PoolTopology, asked: tuple[str | None, str | None]
                 ) -> tuple[int | None, int | None, str | None]:
    """(required level, preferred level, a required label the pool does not name)."""
    required_label, preferred_label = asked
    required = topology.level_of(required_label)
    preferred = topology.level_of(preferred_label)
    missing = required_label if required_label is not None and required is None else None
    return required, preferred, missing


def place(statement: Statement, topology: PoolTopology | None,
          asked: tuple[str | None, str | None], held: set[int], pods: list[str],
          place_pod: Callable[[str], bool],
          room: Callable[[Domain], bool] | None = None) -> bool:
    """Place `pods` (each through `place_pod`, on `statement`) inside one domain, trying the
    domains in order; True when all are placed (the statement keeps them), else nothing is."""
    if topology is None:
        if asked[0] is not None:
            return False  # the pool names no topology: nowhere it could satisfy the requirement
        order: list[Domain | None] = [None]
    else:
        required, preferred, missing = levels_asked(topology, asked)
        if missing is not None:
            return False
        order = topology.order(required, preferred, held, room)
    for domain in order:
        checkpoint = statement.checkpoint()
        statement.within = domain
        try:
            if all(place_pod(pod) for pod in pods):
                return True
        finally:
            statement.within = None
        statement.rollback(checkpoint)
    return False


def no_room(statement: Statement, pool: str, topology: PoolTopology | None,
            asked: tuple[str | None, str | None], held: set[int], pods: list[str],
            place_pod: Callable[[str], bool], room: WholeRoom | None = None
            ) -> reasons.Reason:
    """Why a required placement found no domain: the domain of the required level that had
    room for the most of its pods, by the quick count of `room` where there is one (pods of
    whole GPUs: their free devices), else by trying each (nothing is kept)."""
    label = asked[0]
    assert label is not None
    code = PendingCode.GANG_UNSCHEDULABLE if len(pods) > 1 else PendingCode.NO_FITTING_NODE
    what = (f"its {reasons.count(len(pods), 'pod')} must run inside one domain of topology "
            f"level {label} (required placement)")
    if topology is None or topology.level_of(label) is None:
        return code, f"{what}, and pool {pool} names no such topology level"
    level = topology.level_of(label)
    assert level is not None
    domains = [d for d in topology.domains(level) if held <= d.idxs]
    if not domains:
        return code, (f"{what}, and no ready node of pool {pool} carries that label"
                      + (" beside the nodes it runs on" if held else ""))
    best: tuple[int, Domain] | None = None
    for domain in domains:
        if room is not None:
            # the master sized apart (pods beyond the count) is not counted
            fit = min(room.count(domain, room.pods), len(pods))
            if best is None or fit > best[0]:
                best = (fit, domain)
            continue
        checkpoint = statement.checkpoint()
        statement.within = domain
        fit = 0
        try:
            for pod in pods:
                if not place_pod(pod):
                    break
                fit += 1
        finally:
            statement.within = None
        statement.rollback(checkpoint)
        if best is None or fit > best[0]:
            best = (fit, domain)
    assert best is not None
    fit, domain = best
    if not fit:
        return code, f"{what}: no {label} domain of pool {pool} has room for one of them now"
    return code, (f"{what}: the largest with room, {label}={domain.name} in pool {pool}, has "
                  f"room for {fit} of them")
