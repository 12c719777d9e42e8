"""Why a workload waits, in one sentence with the numbers a researcher needs."""

from fairway_scheduler.core.model import PendingCode
from fairway_scheduler.core.queues import CPU, GPU, MILLI, Queue

Reason = tuple[PendingCode, str]


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def resource(r: int, units: int) -> str:
    if r == GPU:
        value = units / MILLI
        return f"{number(value)} GPU" if value == 1 else f"{number(value)} GPUs"
    if r == CPU:
        return f"{units} millicores"
    return f"{units} MiB of memory"


def per_pod(request) -> str:
    """What one pod asks for: '2 GPUs', '0.5 of a GPU', '20000 MiB of GPU memory', ..."""
    if request.portion is not None:
        what = f"{number(request.portion / MILLI)} of a GPU"
        if request.devices > 1:
            what = f"{number(request.portion / MILLI)} of each of {request.devices} GPUs"
    elif request.memory is not None:
        what = f"{request.memory} MiB of GPU memory"
        if request.devices > 1:
            what += f" on each of {request.devices} GPUs"
    elif request.devices:
        what = count(request.devices, "GPU")
    else:
        what = "no GPU"
    host = []
    if request.cpu:
        host.append(f"{request.cpu} millicores")
    if request.mem:
        host.append(f"{request.mem} MiB of memory")
    return what + (f" and {' and '.join(host)}" if host else "")


def pods_with(pods: int, request, *, more: bool = False, master: bool = False) -> str:
    """`master`: the first of the pods is the master, sized apart (`request.master`)."""
    if master and request.master is not None:
        head = f"a master pod with {per_pod(request.master)}"
        if pods == 1:
            return head
        return f"{head} and {pods_with(pods - 1, request, more=more)}"
    each = " each" if pods > 1 else ""
    return f"{count(pods, 'more pod' if more else 'pod')} with {per_pod(request)}{each}"


def pool_missing(pool: str) -> Reason:
    return PendingCode.NODE_POOL_UNAVAILABLE, f"node pool {pool} does not exist"


def pool_not_ready(pool: str, nodes: int) -> Reason:
    if not nodes:
        return PendingCode.NODE_POOL_UNAVAILABLE, f"node pool {pool} has no nodes"
    return (PendingCode.NODE_POOL_UNAVAILABLE,
            f"node pool {pool} has {count(nodes, 'node')}, none ready")


def no_node_of_type(pool: str, node_type: str) -> Reason:
    return (PendingCode.NO_NODE_OF_TYPE,
            f"node pool {pool} has no node of type {node_type} (label fairway.io/node-type)")


def too_large(pool: str, request, what: str, *, ready: bool = True) -> Reason:
    """`ready` False: no node at all, ready or not."""
    return (PendingCode.NO_SUCH_RESOURCE,
            f"needs {per_pod(request)} per pod; no {'ready ' if ready else ''}node in node pool "
            f"{pool} has that much ({what})")


def over_limit(queue: Queue, r: int, need: int) -> Reason:
    return (PendingCode.OVER_LIMIT,
            f"{queue.kind} {queue.name} uses {resource(r, queue.allocated[r])} of its limit of "
            f"{resource(r, queue.limit[r])} in node pool {queue.pool} and this workload needs "
            f"{resource(r, need)} more")


def non_preemptible(queue: Queue, r: int, need: int) -> Reason:
    return (PendingCode.NON_PREEMPTIBLE_OVER_QUOTA,
            f"{queue.kind} {queue.name} uses {resource(r, queue.allocated_np[r])} of its "
            f"{resource(r, queue.deserved[r])} deserved in node pool {queue.pool} for "
            f"non-preemptible workloads, this one needs {resource(r, need)} more, and "
            f"non-preemptible workloads run only within quota")


def gang(pool: str, pods: int, request, fit: int | None, free: int, nodes: int, *,
         pod_slots: int | None = None, master: bool = False) -> Reason:
    """`pod_slots`: how many more pods the pool's nodes may run, when that is too few;
    `master`: the first pod is the master, sized apart, and `fit` counts the others (None:
    the master itself finds no room)."""
    full = ""
    if pod_slots is not None:
        full = f"; its nodes may run {count(pod_slots, 'more pod')} in all"
    if not master:
        room = f"at most {fit} fit"
    elif fit is None:
        room = "its master pod does not fit"
    else:
        room = f"at most {fit} of the {pods - 1} other pods fit"
    return (PendingCode.GANG_UNSCHEDULABLE,
            f"needs {pods_with(pods, request, master=master)} placed together; {room} "
            f"in node pool "
            f"{pool} now ({resource(GPU, free)} free on {count(nodes, 'node')}{full})")


def _at_max_pods(nodes: int, max_pods: int | None) -> str:
    verb = "runs" if nodes == 1 else "run"
    limit = (f"its maximum of {count(max_pods, 'pod')}" if nodes == 1 and max_pods is not None
             else f"their maximum of {count(max_pods, 'pod')} each" if max_pods is not None
             else "their maximum number of pods")
    return f"{count(nodes, 'node')} already {verb} {limit}"


def pods_full(pool: str, request, nodes: int, max_pods: int | None, *,
              more: bool = False) -> Reason:
    """The pod would fit on `nodes` nodes but for their maximum number of pods."""
    return (PendingCode.NO_FITTING_NODE,
            f"needs {pods_with(1, request, more=more)}; no node in node pool {pool} has room "
            f"for another pod: {_at_max_pods(nodes, max_pods)} and could hold it otherwise")


def over_fair_share(queue: Queue, need: int, slot: int, free: int) -> Reason:
    return (PendingCode.OVER_FAIR_SHARE,
            f"project {queue.name} would use {resource(GPU, queue.allocated[GPU] + need)} in "
            f"node pool {queue.pool}, over its fair share of {resource(GPU, queue.fair[GPU])}"
            f"{usage_lowered(queue)}, and no node there has room ({resource(GPU, free)} free, "
            f"the largest free slot {count(slot, 'GPU')})")


def usage_lowered(queue: Queue) -> str:
    """When time-aware fairness gave the queue less than its weight alone would: by how much,
    and the usage that did it (its own, or its department's)."""
    plain = queue.plain_fair
    if plain is None or plain[GPU] <= queue.fair[GPU]:
        return ""
    culprit = queue
    if queue.parent is not None and queue.parent.plain_fair is not None and (
            queue.parent.plain_fair[GPU] > queue.parent.fair[GPU]):
        culprit = queue.parent
    used = culprit.usage[GPU] if culprit.usage else 0.0
    whose = "it" if culprit is queue else f"its department {culprit.name}"
    return (f" ({resource(GPU, plain[GPU])} without time-aware fairness: {whose} used "
            f"{gpu_hours(used)} in the usage window, more than its weighted share)")


def gpu_hours(gpu_seconds: float) -> str:
    """Two significant digits: usage grows every cycle, and a reason whose numbers change is
    published again; this way it changes when the usage moved by a few percent."""
    hours = gpu_seconds / 3600
    if hours >= 10:
        return f"about {int(float(f'{hours:.2g}'))} GPU-hours"
    return f"{hours:.1f} GPU-hours"


def no_fitting_node(pool: str, pods: int, request, slot: int, free: int, *,
                    more: bool = False) -> Reason:
    return (PendingCode.NO_FITTING_NODE,
            f"needs {pods_with(pods, request, more=more)}; no node in node pool {pool} has "
            f"room for it ({resource(GPU, free)} free, the largest free slot "
            f"{count(slot, 'GPU')})")


def host_short(pool: str, request, nodes: int, lacking_cpu: int, most_cpu: int, most_mem: int,
               *, more: bool = False) -> Reason:
    """The GPUs are free on some nodes, but not the CPU or memory the pod asks for with them."""
    most = "" if nodes == 1 else "at most "
    on = "" if nodes == 1 else " on one"
    if lacking_cpu == nodes:
        short = f"CPU ({most}{most_cpu} millicores free{on}, {request.cpu} asked)"
    elif lacking_cpu == 0:
        short = f"memory ({most}{most_mem} MiB free{on}, {request.mem} MiB asked)"
    else:
        short = (f"CPU or memory (the most free on one: {most_cpu} millicores, {most_mem} "
                 "MiB)")
    return (PendingCode.NO_FITTING_NODE,
            f"needs {pods_with(1, request, more=more)}; in node pool {pool}, "
            f"{count(nodes, 'node')} {'has' if nodes == 1 else 'have'} the GPUs free but "
            f"not the {short}")


def waiting_for_pods(min_pods: int, exist: int) -> Reason:
    return (PendingCode.WAITING_FOR_PODS,
            f"needs {count(min_pods, 'pod')} together; {exist} exist so far")
