"""Scenarios for `fairway simulate` (docs/scenario-format.md): parsed and checked up front.

`parse_scenario(mapping)` takes the YAML document as plain data (the caller reads the file) and
returns a `Scenario`, or raises `ScenarioError` naming the key and the workload at fault. Unknown
keys and impossible values are rejected before anything runs.
"""

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fairway_contracts.quantities import MIB, parse_quantity
from fairway_contracts.workloads import (
    GPU_SWAP_LABEL,
    NODE_TYPE_LABEL,
    NON_PREEMPTIBLE_FROM,
    PRIORITY_CLASSES,
)
from fairway_scheduler.core.model import (
    TIME_AWARE_FAIRNESS_OFF,
    WINDOW_TYPES,
    DisruptionSettings,
    Node,
    NodePool,
    PodSize,
    QueueSpec,
    Quota,
    TimeAwareFairness,
)
from fairway_scheduler.core.swap import GpuSwap
from fairway_scheduler.core.usage import DEFAULT_BUCKET_SECONDS

DEFAULT_POOL = "default"
ORG_CREATED = datetime(2026, 1, 1, tzinfo=UTC)
TYPES = ("workspace", "training", "distributed", "inference")
DEFAULT_PRIORITY = {"workspace": "build", "training": "train", "distributed": "train",
                    "inference": "inference"}
STRATEGIES = ("binpack", "spread")
ACTIONS = ("consolidate", "reclaim", "preempt", "stale-gang")
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class ScenarioError(ValueError):
    """A scenario the simulator refuses, with the key (and workload) at fault."""


@dataclass(frozen=True, slots=True)
class PoolConfig:
    pool: NodePool
    label_key: str | None
    label_value: str | None
    min_guaranteed_runtime: float = 0


@dataclass(frozen=True, slots=True)
class ScenarioWorkload:
    name: str
    project: str
    type: str
    priority_class: str
    priority: int
    preemptible: bool
    pods: int
    min_pods: int
    devices: int  # whole devices per pod, or devices shared per pod for fractions
    portion: float | None
    gpu_memory_mib: int | None
    gpu_limit: float | None
    cpu_millis: int
    memory_mib: int
    node_pools: tuple[str, ...]
    submit_at: float
    duration: float | None
    running_nodes: tuple[str | None, ...] = ()  # None: that pod was lost (waits again)
    started_at: float = 0
    lost_at: float | None = None  # since when it runs below its minimum
    termination_seconds: float | None = None  # how long its evicted pods take to go
    node_type: str | None = None  # only nodes labelled fairway.io/node-type=<this>
    # The devices each running pod holds (None: lost, or chosen by the simulator).
    running_gpus: tuple[tuple[int, ...] | None, ...] = ()
    # A distributed workload's master sized apart (`master:`): its first pod asks for this.
    master: PodSize | None = None
    # `topology: {requiredPlacement, preferredPlacement}`: topology levels (node label keys)
    topology_required: str | None = None
    topology_preferred: str | None = None

    def size_of(self, index: int) -> tuple[int, float | None, int | None, int, int]:
        """(devices, portion, GPU memory, millicores, MiB) pod `index` asks for."""
        if index == 0 and self.master is not None:
            m = self.master
            return m.gpus_per_pod, m.gpu_portion, m.gpu_memory_mib, m.cpu_millis, m.memory_mib
        return self.devices, self.portion, self.gpu_memory_mib, self.cpu_millis, self.memory_mib


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """A queue held `amounts` (GPUs, millicores, MiB) in `pool` from `start` to `end` seconds
    (negative: before the scenario's t=0)."""

    kind: str  # project | department
    name: str
    pool: str
    amounts: tuple[float, float, float]
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Scenario:
    rounds: int = 10
    seconds_per_round: float = 1
    # How long an evicted pod takes to go (0: gone within the round); disruption settings.
    eviction_seconds: float = 0
    disruption: DisruptionSettings = field(default_factory=DisruptionSettings)
    pools: tuple[PoolConfig, ...] = ()
    nodes: tuple[Node, ...] = ()
    queues: tuple[QueueSpec, ...] = ()
    projects: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    workloads: tuple[ScenarioWorkload, ...] = field(default_factory=tuple)
    # Time-aware fairness: the cluster's settings (a pool's own are on its NodePool), the
    # usage history before t=0, and the length of the history's buckets.
    time_aware_fairness: TimeAwareFairness = TIME_AWARE_FAIRNESS_OFF
    usage: tuple["UsageEntry", ...] = ()
    usage_bucket_seconds: float = DEFAULT_BUCKET_SECONDS

    @property
    def pool_names(self) -> tuple[str, ...]:
        return tuple(p.pool.name for p in self.pools)


def parse_scenario(data: Any) -> Scenario:
    if data is None:
        data = {}
    doc = _mapping(data, "the scenario")
    # `expect` holds a scenario test's expected outcome; the simulator ignores it.
    _keys(doc, {"simulation", "cluster", "org", "workloads", "usage", "expect"}, "the scenario")
    sim = _mapping(doc.get("simulation") or {}, "simulation")
    _keys(sim, {"rounds", "secondsPerRound", "evictionSeconds", "staleGangGrace",
                "maxPodsMovedPerCycle", "reclaimerSaturationMultiplier", "actions",
                "timeAwareFairness", "usageBucket"},
          "simulation")
    fairness = _time_aware(sim.get("timeAwareFairness"), "simulation.timeAwareFairness",
                           TimeAwareFairness())
    bucket = _duration(sim.get("usageBucket", DEFAULT_BUCKET_SECONDS), "simulation.usageBucket")
    if bucket <= 0:
        raise ScenarioError("simulation.usageBucket: must be longer than 0")
    rounds = _int(sim.get("rounds", 10), "simulation.rounds", minimum=0)
    spr = _number(sim.get("secondsPerRound", 1), "simulation.secondsPerRound", minimum=0)
    eviction = _duration(sim.get("evictionSeconds", 0), "simulation.evictionSeconds")
    grace = _duration(sim.get("staleGangGrace", 60), "simulation.staleGangGrace")
    moves = _int(sim.get("maxPodsMovedPerCycle", 8), "simulation.maxPodsMovedPerCycle",
                 minimum=0)
    multiplier = _number(sim.get("reclaimerSaturationMultiplier", 1),
                         "simulation.reclaimerSaturationMultiplier", minimum=1)
    actions = sim.get("actions", list(ACTIONS))
    for action in _list(actions, "simulation.actions"):
        if action not in ACTIONS:
            raise ScenarioError(f"simulation.actions: {action!r} is not one of "
                                f"{', '.join(ACTIONS)}")
    disruption = DisruptionSettings(reclaim="reclaim" in actions, preempt="preempt" in actions,
                                    consolidate="consolidate" in actions,
                                    stale_gang_grace=grace if "stale-gang" in actions
                                    else math.inf, max_pods_moved=moves,
                                    reclaimer_saturation_multiplier=multiplier)

    cluster = _mapping(doc.get("cluster") or {}, "cluster")
    _keys(cluster, {"nodePools", "nodes"}, "cluster")
    pools = _pools(_list(cluster.get("nodePools") or [], "cluster.nodePools"), fairness)
    nodes = _nodes(_list(cluster.get("nodes") or [], "cluster.nodes"), pools)

    org = _mapping(doc.get("org") or {}, "org")
    _keys(org, {"departments", "projects"}, "org")
    pool_names = tuple(p.pool.name for p in pools)
    departments, projects, queues = _org(org, pool_names)

    workloads = _workloads(_list(doc.get("workloads") or [], "workloads"), pools,
                           set(projects), {n.name for n in nodes})
    _check_pinned(workloads, nodes)
    usage = _usage(_list(doc.get("usage") or [], "usage"), pool_names, projects, departments)
    return Scenario(rounds, spr, eviction, disruption, pools, nodes, queues, projects,
                    departments, workloads, fairness, usage, bucket)


# time-aware fairness ------------------------------------------------------------------------

TIME_AWARE_KEYS = {"enabled", "windowType", "windowSize", "halfLifePeriod", "kValue"}


def _time_aware(value: Any, where: str, inherit: TimeAwareFairness) -> TimeAwareFairness:
    """`timeAwareFairness`: given, it is on unless `enabled: false`; keys left out are the
    ones `inherit` has (a pool's inherit the cluster's)."""
    if value is None:
        return inherit
    item = _mapping(value, where)
    _keys(item, TIME_AWARE_KEYS, where)
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ScenarioError(f"{where}.enabled: expected true or false")
    window_type = item.get("windowType", inherit.window_type)
    if window_type not in WINDOW_TYPES:
        raise ScenarioError(f"{where}.windowType: {window_type!r} is not sliding or tumbling")
    window = _duration(item.get("windowSize", inherit.window_seconds), f"{where}.windowSize")
    if window <= 0:
        raise ScenarioError(f"{where}.windowSize: must be longer than 0")
    half_life = _duration(item.get("halfLifePeriod", inherit.half_life_seconds),
                          f"{where}.halfLifePeriod")
    k = _number(item.get("kValue", inherit.k_value), f"{where}.kValue", minimum=0)
    return TimeAwareFairness(enabled, window_type, window, half_life, k)


USAGE_KEYS = {"project", "department", "nodePool", "gpu", "cpuMillis", "memoryMiB", "from",
              "until"}


def _usage(items: list, pools: tuple[str, ...], projects: tuple[str, ...],
           departments: tuple[str, ...]) -> tuple[UsageEntry, ...]:
    """`usage`: what a project or department held before the scenario starts; `from` and
    `until` are how long before t=0 (until defaults to 0: up to the start)."""
    out: list[UsageEntry] = []
    for i, item in enumerate(items):
        where = f"usage[{i}]"
        item = _mapping(item, where)
        _keys(item, USAGE_KEYS, where)
        if ("project" in item) == ("department" in item):
            raise ScenarioError(f"{where}: name either a project or a department")
        kind = "project" if "project" in item else "department"
        name = item[kind]
        if name not in (projects if kind == "project" else departments):
            raise ScenarioError(f"{where}.{kind}: {kind} {name!r} does not exist")
        where = f"usage[{i}] ({name})"
        pool = item.get("nodePool", DEFAULT_POOL)
        if pool not in pools:
            raise ScenarioError(f"{where}.nodePool: node pool {pool!r} does not exist")
        amounts = (_number(item.get("gpu", 0), f"{where}.gpu", minimum=0),
                   _number(item.get("cpuMillis", 0), f"{where}.cpuMillis", minimum=0),
                   _number(item.get("memoryMiB", 0), f"{where}.memoryMiB", minimum=0))
        if "from" not in item:
            raise ScenarioError(f"{where}.from: required (how long before the start it began)")
        start = _duration(item["from"], f"{where}.from")
        end = _duration(item.get("until", 0), f"{where}.until")
        if end >= start:
            raise ScenarioError(f"{where}.until: {item.get('until', 0)!r} is not after from "
                                f"({item['from']!r}): both count back from the start")
        out.append(UsageEntry(kind, str(name), pool, amounts, -start, -end))
    return tuple(out)


# cluster ------------------------------------------------------------------------------------

def _pools(items: list, fairness: TimeAwareFairness) -> tuple[PoolConfig, ...]:
    out: list[PoolConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"cluster.nodePools[{i}]"
        item = _mapping(item, where)
        _keys(item, {"name", "labelKey", "labelValue", "placement", "minGuaranteedRuntime",
                     "timeAwareFairness", "networkTopology", "gpuResourceOptimization"}, where)
        name = _name(item.get("name"), f"{where}.name")
        where = f"cluster.nodePools[{i}] ({name})"
        if name in seen:
            raise ScenarioError(f"{where}.name: node pool {name} is defined twice")
        seen.add(name)
        placement = _mapping(item.get("placement") or {}, f"{where}.placement")
        _keys(placement, {"gpu", "cpu"}, f"{where}.placement")
        strategies = []
        for kind in ("gpu", "cpu"):
            value = placement.get(kind, "binpack")
            if value not in STRATEGIES:
                raise ScenarioError(f"{where}.placement.{kind}: {value!r} is not binpack or "
                                    "spread")
            strategies.append(value)
        key, value = item.get("labelKey"), item.get("labelValue")
        if name != DEFAULT_POOL and (key is None or value is None):
            raise ScenarioError(f"{where}: labelKey and labelValue are required")
        runtime = _duration(item.get("minGuaranteedRuntime", 0),
                            f"{where}.minGuaranteedRuntime")
        own = None
        if item.get("timeAwareFairness") is not None:
            own = _time_aware(item["timeAwareFairness"], f"{where}.timeAwareFairness", fairness)
        levels = _topology_levels(item.get("networkTopology"), f"{where}.networkTopology")
        swap = _swap(item.get("gpuResourceOptimization"), f"{where}.gpuResourceOptimization")
        out.append(PoolConfig(NodePool(name, strategies[0], strategies[1], runtime, own,
                                       topology=levels, swap=swap),
                              None if key is None else str(key),
                              None if value is None else str(value), runtime))
    if DEFAULT_POOL not in seen:
        out.append(PoolConfig(NodePool(DEFAULT_POOL), None, None))
    return tuple(out)


def _swap(value: Any, where: str) -> GpuSwap | None:
    """`gpuResourceOptimization: {swapEnabled, cpuSwapMemorySize, reservedGpuMemoryForSwap
    Operations}` as the API takes them (sizes as Kubernetes quantities, e.g. 100Gi); None:
    swap off."""
    if value is None:
        return None
    item = _mapping(value, where)
    _keys(item, {"swapEnabled", "cpuSwapMemorySize", "reservedGpuMemoryForSwapOperations",
                 "nodeLevelSchedulerEnabled"}, where)
    sizes = []
    for key in ("cpuSwapMemorySize", "reservedGpuMemoryForSwapOperations"):
        raw = item.get(key)
        try:
            mib = 0 if raw is None else math.ceil(parse_quantity(raw) / MIB)
        except ValueError:
            mib = -1
        if mib < 0:
            raise ScenarioError(f"{where}.{key}: {raw!r} is not a memory size (e.g. 100Gi)")
        sizes.append(mib)
    enabled = item.get("swapEnabled", False)
    if not isinstance(enabled, bool):
        raise ScenarioError(f"{where}.swapEnabled: expected true or false")
    if not enabled:
        return None
    if not sizes[0]:
        raise ScenarioError(f"{where}.cpuSwapMemorySize: swapEnabled needs host memory to swap "
                            "GPU memory to: give a size above zero (e.g. 100Gi)")
    return GpuSwap(sizes[0], sizes[1])


def _topology_levels(value: Any, where: str) -> tuple[str, ...]:
    """`networkTopology: {levels: [{nodeLabel: KEY}, ...]}`, the widest level first."""
    if value is None:
        return ()
    item = _mapping(value, where)
    _keys(item, {"levels"}, where)
    levels: list[str] = []
    for i, level in enumerate(_list(item.get("levels") or [], f"{where}.levels")):
        at = f"{where}.levels[{i}]"
        level = _mapping(level, at)
        _keys(level, {"nodeLabel"}, at)
        label = level.get("nodeLabel")
        if not isinstance(label, str) or not label:
            raise ScenarioError(f"{at}.nodeLabel: expected a node label key")
        if label in levels:
            raise ScenarioError(f"{at}.nodeLabel: level {label} is named twice")
        levels.append(label)
    if not levels:
        raise ScenarioError(f"{where}.levels: expected at least one level")
    return tuple(levels)


def _nodes(items: list, pools: tuple[PoolConfig, ...]) -> tuple[Node, ...]:
    out: list[Node] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"cluster.nodes[{i}]"
        item = _mapping(item, where)
        _keys(item, {"name", "labels", "gpus", "gpuMemoryMiB", "cpuMillis", "memoryMiB",
                     "ready", "gpuProduct", "maxPods", "topology", "gpuSwap"}, where)
        pattern = _name(item.get("name"), f"{where}.name", strict=False)
        where = f"cluster.nodes[{i}] ({pattern})"
        labels = _mapping(item.get("labels") or {}, f"{where}.labels")
        labels = {str(k): str(v) for k, v in labels.items()}
        gpus = _int(item.get("gpus", 0), f"{where}.gpus", minimum=0)
        gpu_memory = item.get("gpuMemoryMiB")
        if gpu_memory is not None:
            gpu_memory = _int(gpu_memory, f"{where}.gpuMemoryMiB", minimum=1)
        cpu = _int(item.get("cpuMillis", 0), f"{where}.cpuMillis", minimum=0)
        memory = _int(item.get("memoryMiB", 0), f"{where}.memoryMiB", minimum=0)
        max_pods = _int(item.get("maxPods", 110), f"{where}.maxPods", minimum=0)
        ready = item.get("ready", True)
        if not isinstance(ready, bool):
            raise ScenarioError(f"{where}.ready: expected true or false")
        swap = item.get("gpuSwap", False)
        if not isinstance(swap, bool):
            raise ScenarioError(f"{where}.gpuSwap: expected true or false")
        if swap:  # as kubesim labels it: one file drives both
            labels[GPU_SWAP_LABEL] = "true"
        config = next((p for p in pools if p.label_key is not None
                       and labels.get(p.label_key) == p.label_value),
                      next(p for p in pools if p.pool.name == DEFAULT_POOL))
        pool = config.pool.name
        generators = _topology_generators(item.get("topology"), f"{where}.topology")
        for index, name in enumerate(_expand(pattern, f"{where}.name")):
            if name in seen:
                raise ScenarioError(f"{where}.name: node {name} is defined twice")
            seen.add(name)
            mine = {**labels, **{key: f"{prefix}{index // per + 1}"
                                 for key, per, prefix in generators}}
            placed = tuple((k, mine[k]) for k in config.pool.topology if k in mine)
            out.append(Node(name, pool, ready, gpus, item.get("gpuProduct"), gpu_memory, cpu,
                            memory, max_pods, labels.get(NODE_TYPE_LABEL),
                            _with_hostname(placed, config.pool.topology, name),
                            gpu_swap=labels.get(GPU_SWAP_LABEL) == "true"))
    return tuple(out)


def _topology_generators(value: Any, where: str) -> list[tuple[str, int, str]]:
    """A node entry's `topology: [{nodeLabel, nodesPerDomain, prefix}]`: labels generated on
    the nodes it names, in order (every `nodesPerDomain` nodes the next domain, `prefix` and
    its number from 1; the prefix defaults to the key's last part and a dash)."""
    if value is None:
        return []
    out: list[tuple[str, int, str]] = []
    for i, item in enumerate(_list(value, where)):
        at = f"{where}[{i}]"
        item = _mapping(item, at)
        _keys(item, {"nodeLabel", "nodesPerDomain", "prefix"}, at)
        key = item.get("nodeLabel")
        if not isinstance(key, str) or not key:
            raise ScenarioError(f"{at}.nodeLabel: expected a node label key")
        per = _int(item.get("nodesPerDomain"), f"{at}.nodesPerDomain", minimum=1)
        prefix = item.get("prefix", key.rsplit("/", 1)[-1] + "-")
        if not isinstance(prefix, str):
            raise ScenarioError(f"{at}.prefix: expected a string")
        out.append((key, per, prefix))
    return out


def _with_hostname(labels: tuple[tuple[str, str], ...], levels: tuple[str, ...], name: str
                   ) -> tuple[tuple[str, str], ...]:
    """A level on kubernetes.io/hostname is the node itself, as Kubernetes labels it."""
    if HOSTNAME_LABEL in levels and all(k != HOSTNAME_LABEL for k, _ in labels):
        return tuple(sorted((*labels, (HOSTNAME_LABEL, name)),
                            key=lambda kv: levels.index(kv[0])))
    return labels


def _expand(pattern: str, where: str) -> list[str]:
    match = _RANGE.search(pattern)
    if not match:
        return [pattern]
    low, high = int(match.group(1)), int(match.group(2))
    if high < low:
        raise ScenarioError(f"{where}: range {{{low}..{high}}} is empty")
    return [name for n in range(low, high + 1)
            for name in _expand(pattern[:match.start()] + str(n) + pattern[match.end():], where)]


# org ----------------------------------------------------------------------------------------

def _org(org: dict, pools: tuple[str, ...]
         ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[QueueSpec, ...]]:
    queues: list[QueueSpec] = []
    departments: list[str] = []
    for i, item in enumerate(_list(org.get("departments") or [], "org.departments")):
        where = f"org.departments[{i}]"
        item = _mapping(item, where)
        _keys(item, {"name", "resources"}, where)
        name = _name(item.get("name"), f"{where}.name")
        if name in departments:
            raise ScenarioError(f"{where}.name: department {name} is defined twice")
        departments.append(name)
        quotas = _resources(item.get("resources"), f"org.departments[{i}] ({name}).resources",
                            pools)
        queues += [QueueSpec(name, "department", pool, None, *quotas.get(pool, _none()),
                             created_at=_created(i))
                   for pool in pools]
    projects: list[str] = []
    for i, item in enumerate(_list(org.get("projects") or [], "org.projects")):
        where = f"org.projects[{i}]"
        item = _mapping(item, where)
        _keys(item, {"name", "department", "resources"}, where)
        name = _name(item.get("name"), f"{where}.name")
        where = f"org.projects[{i}] ({name})"
        if name in projects:
            raise ScenarioError(f"{where}.name: project {name} is defined twice")
        projects.append(name)
        department = item.get("department")
        if department is not None and department not in departments:
            raise ScenarioError(f"{where}.department: department {department!r} does not "
                                "exist")
        quotas = _resources(item.get("resources"), f"{where}.resources", pools)
        queues += [QueueSpec(name, "project", pool, department, *quotas.get(pool, _none()),
                             created_at=_created(len(departments) + i))
                   for pool in pools]
    return tuple(departments), tuple(projects), tuple(queues)


def _created(index: int) -> datetime:
    """Org units are created in the order the file lists them (ties go to the older)."""
    return ORG_CREATED + timedelta(seconds=index)


def _none() -> tuple[Quota, Quota, Quota]:
    return (Quota(), Quota(), Quota())


def _resources(value: Any, where: str, pools: tuple[str, ...]
               ) -> dict[str, tuple[Quota, Quota, Quota]]:
    out = {}
    for pool, per in _mapping(value or {}, where).items():
        if pool not in pools:
            raise ScenarioError(f"{where}.{pool}: node pool {pool!r} does not exist")
        per = _mapping(per or {}, f"{where}.{pool}")
        _keys(per, {"gpu", "cpu", "memory"}, f"{where}.{pool}")
        quotas = []
        for kind in ("gpu", "cpu", "memory"):
            q = _mapping(per.get(kind) or {}, f"{where}.{pool}.{kind}")
            at = f"{where}.{pool}.{kind}"
            _keys(q, {"deserved", "limit", "overQuotaWeight"}, at)
            deserved = _number(q.get("deserved", 0), f"{at}.deserved", minimum=0)
            limit = _number(q.get("limit", -1), f"{at}.limit", minimum=-1)
            if limit != -1 and limit < 0:
                raise ScenarioError(f"{at}.limit: must be -1 (none) or at least 0")
            if limit != -1 and limit < deserved:
                raise ScenarioError(f"{at}.limit: {limit} is below deserved {deserved}")
            weight = _number(q.get("overQuotaWeight", 1), f"{at}.overQuotaWeight", minimum=0)
            quotas.append(Quota(deserved, limit, weight))
        out[pool] = tuple(quotas)
    return out


# workloads ----------------------------------------------------------------------------------

WORKLOAD_KEYS = {"name", "project", "type", "priorityClass", "preemptibility", "pods", "minPods",
                 "gpu", "gpuMemoryMiB", "gpuLimit", "gpuDevices", "cpuMillis", "memoryMiB",
                 "nodePools", "submitAt", "duration", "running", "terminationSeconds",
                 "nodeType", "master", "topology"}
MASTER_KEYS = {"gpu", "gpuMemoryMiB", "gpuDevices", "cpuMillis", "memoryMiB"}


def _workloads(items: list, configs: tuple[PoolConfig, ...], projects: set[str],
               nodes: set[str]) -> tuple[ScenarioWorkload, ...]:
    out: list[ScenarioWorkload] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        item = _mapping(item, f"workloads[{i}]")
        name = _name(item.get("name"), f"workloads[{i}].name")
        w = f"workloads[{i}] ({name})"
        if name in seen:
            raise ScenarioError(f"{w}.name: workload {name} is defined twice")
        seen.add(name)
        out.append(_workload(item, name, w, configs, projects, nodes))
    return tuple(out)


def _workload(item: dict, name: str, w: str, configs: tuple[PoolConfig, ...],
              projects: set[str], nodes: set[str]) -> ScenarioWorkload:
    """One workload, checked key by key in the order the errors are reported."""
    pools = tuple(p.pool.name for p in configs)
    _keys(item, WORKLOAD_KEYS, w)
    project = item.get("project")
    if project not in projects:
        raise ScenarioError(f"{w}.project: project {project!r} does not exist")
    kind, priority_class, priority, preemptible = _kind_and_priority(item, w)
    pods = _int(item.get("pods", 1), f"{w}.pods", minimum=1)
    min_pods = _int(item.get("minPods", pods), f"{w}.minPods", minimum=1)
    if min_pods > pods:
        raise ScenarioError(f"{w}.minPods: {min_pods} is more than pods ({pods})")
    devices, portion, memory, limit = _gpus(item, w)
    cpu = _int(item.get("cpuMillis", 0), f"{w}.cpuMillis", minimum=0)
    mem = _int(item.get("memoryMiB", 0), f"{w}.memoryMiB", minimum=0)
    node_pools = tuple(str(p) for p in _list(item.get("nodePools") or [], f"{w}.nodePools"))
    for pool in node_pools:
        if pool not in pools:
            raise ScenarioError(f"{w}.nodePools: node pool {pool!r} does not exist")
    submit_at = _number(item.get("submitAt", 0), f"{w}.submitAt")
    duration = item.get("duration")
    if duration is not None:
        duration = _duration(duration, f"{w}.duration")
    running_nodes, started_at, lost_at = _running(item, w, pods, nodes)
    node_type = item.get("nodeType")
    if node_type is not None and (not isinstance(node_type, str) or not node_type):
        raise ScenarioError(f"{w}.nodeType: expected a node type name")
    termination = None
    if "terminationSeconds" in item:
        termination = _duration(item["terminationSeconds"], f"{w}.terminationSeconds")
    master = _master(item, w, kind)
    required, preferred = _topology(item.get("topology"), f"{w}.topology", configs,
                                    node_pools)
    return ScenarioWorkload(name, project, kind, priority_class, priority, preemptible, pods,
                            min_pods, devices, portion, memory, limit, cpu, mem, node_pools,
                            submit_at, duration, running_nodes, started_at, lost_at,
                            termination, node_type,
                            _running_gpus(item, w, running_nodes, devices, master), master,
                            required, preferred)


def _topology(value: Any, where: str, pools: tuple[PoolConfig, ...],
              node_pools: tuple[str, ...]) -> tuple[str | None, str | None]:
    """`topology: {requiredPlacement, preferredPlacement}`: each a level of the topology of
    every pool the workload may run in."""
    if value is None:
        return None, None
    item = _mapping(value, where)
    _keys(item, {"requiredPlacement", "preferredPlacement"}, where)
    candidates = [p for p in pools if not node_pools or p.pool.name in node_pools]
    out: list[str | None] = []
    for key in ("requiredPlacement", "preferredPlacement"):
        label = item.get(key)
        if label is not None:
            if not isinstance(label, str) or not label:
                raise ScenarioError(f"{where}.{key}: expected a topology level (node label key)")
            if not any(label in p.pool.topology for p in candidates):
                raise ScenarioError(f"{where}.{key}: {label} is not a topology level of "
                                    f"{'its node pools' if node_pools else 'any node pool'}")
        out.append(label)
    return out[0], out[1]


def _master(item: dict, w: str, kind: str) -> PodSize | None:
    """`master`: a distributed workload's first pod sized apart (its master; an MPI launcher
    asks for no GPU), with the workload's own GPU, CPU and memory keys."""
    if "master" not in item:
        return None
    at = f"{w}.master"
    if kind != "distributed":
        raise ScenarioError(f"{at}: only a distributed workload has a master (type is {kind})")
    master = _mapping(item["master"], at)
    _keys(master, MASTER_KEYS, at)
    devices, portion, memory, _ = _gpus(master, at)
    return PodSize(devices, portion, memory,
                   _int(master.get("cpuMillis", 0), f"{at}.cpuMillis", minimum=0),
                   _int(master.get("memoryMiB", 0), f"{at}.memoryMiB", minimum=0))


def _kind_and_priority(item: dict, w: str) -> tuple[str, str, int, bool]:
    """Its type, priority class, priority value and whether it is preemptible."""
    kind = item.get("type", "training")
    if kind not in TYPES:
        raise ScenarioError(f"{w}.type: {kind!r} is not one of {', '.join(TYPES)}")
    priority_class = item.get("priorityClass", DEFAULT_PRIORITY[kind])
    if priority_class not in PRIORITY_CLASSES:
        raise ScenarioError(f"{w}.priorityClass: {priority_class!r} is not a priority class")
    priority = PRIORITY_CLASSES[priority_class]
    preemptibility = item.get("preemptibility")
    if preemptibility not in (None, "preemptible", "non-preemptible"):
        raise ScenarioError(f"{w}.preemptibility: {preemptibility!r} is not preemptible or "
                            "non-preemptible")
    preemptible = (priority < NON_PREEMPTIBLE_FROM if preemptibility is None
                   else preemptibility == "preemptible")
    return kind, priority_class, priority, preemptible


def _gpus(item: dict, w: str) -> tuple[int, float | None, int | None, float | None]:
    """Devices per pod, and for fractions the portion or the memory, and the limit."""
    if "gpu" in item and "gpuMemoryMiB" in item:
        raise ScenarioError(f"{w}: gpu and gpuMemoryMiB cannot be given together")
    gpu = _number(item.get("gpu", 0), f"{w}.gpu", minimum=0)
    portion = memory = None
    devices = int(gpu)
    if gpu and not float(gpu).is_integer():
        if gpu > 1:
            raise ScenarioError(f"{w}.gpu: a fraction above 1 ({gpu}) is not possible; ask "
                                "for whole GPUs or a portion below 1")
        portion, devices = gpu, 1
    if "gpuMemoryMiB" in item:
        memory = _int(item["gpuMemoryMiB"], f"{w}.gpuMemoryMiB", minimum=1)
        devices = 1
    if "gpuDevices" in item:
        if portion is None and memory is None:
            raise ScenarioError(f"{w}.gpuDevices: only for fractions (gpu below 1 or "
                                "gpuMemoryMiB)")
        devices = _int(item["gpuDevices"], f"{w}.gpuDevices", minimum=1)
    limit = None
    if "gpuLimit" in item:
        limit = _number(item["gpuLimit"], f"{w}.gpuLimit", minimum=0)
        if portion is None:
            if memory is not None or limit != gpu:
                raise ScenarioError(f"{w}.gpuLimit: a limit above the request is only for "
                                    "portion fractions (gpu below 1)")
            limit = None  # whole GPUs at their own limit: nothing dynamic
        elif limit < portion or limit > 1:
            raise ScenarioError(f"{w}.gpuLimit: {limit} must be between gpu ({portion}) "
                                "and 1")
    return devices, portion, memory, limit


def _running_gpus(item: dict, w: str, running_nodes: tuple[str | None, ...], per_pod: int,
                  master: PodSize | None = None) -> tuple[tuple[int, ...] | None, ...]:
    """`running.gpus`: the device indices each running pod holds, one list per pod (null for
    a lost pod; the first is the master's where it is sized apart); the simulator checks them
    against the nodes."""
    running = item.get("running") or {}
    if "gpus" not in running:
        return ()
    at = f"{w}.running.gpus"
    given = _list(running["gpus"], at)
    if len(given) != len(running_nodes):
        raise ScenarioError(f"{at}: {len(given)} given, one per pod ({len(running_nodes)}) "
                            "expected")
    out: list[tuple[int, ...] | None] = []
    for i, (node, gpus) in enumerate(zip(running_nodes, given, strict=True)):
        if node is None or gpus is None:
            if node is not gpus:
                raise ScenarioError(f"{at}[{i}]: null for a lost pod (and only for one)")
            out.append(None)
            continue
        indices = tuple(_int(g, f"{at}[{i}]", minimum=0) for g in _list(gpus, f"{at}[{i}]"))
        devices = master.gpus_per_pod if i == 0 and master is not None else per_pod
        if len(indices) != devices or len(set(indices)) != devices:
            raise ScenarioError(f"{at}[{i}]: {list(indices)} given, {devices} distinct "
                                f"device {'index' if devices == 1 else 'indices'} expected")
        out.append(indices)
    return tuple(out)


HOSTNAME_LABEL = "kubernetes.io/hostname"


def _check_pinned(workloads: tuple[ScenarioWorkload, ...], nodes: tuple[Node, ...]) -> None:
    """The devices `running.gpus` pins exist on their nodes and hold what is pinned there."""
    by_name = {n.name: n for n in nodes}
    used: dict[tuple[str, int], int] = {}
    for i, w in enumerate(workloads):
        for pod, devices in enumerate(w.running_gpus):
            name = w.running_nodes[pod]
            if devices is None or name is None:
                continue
            node = by_name[name]
            at = f"workloads[{i}] ({w.name}).running.gpus[{pod}]"
            _, portion, gpu_memory, _, _ = w.size_of(pod)
            if portion is not None:
                milli = round(portion * 1000)
            elif gpu_memory is not None:
                milli = -(-gpu_memory * 1000 // (node.gpu_memory_mib or 1))
            else:
                milli = 1000
            for d in devices:
                if d >= node.gpus:
                    raise ScenarioError(f"{at}: node {name} has no GPU {d}")
                used[(name, d)] = used.get((name, d), 0) + milli
                swapping = node.gpu_swap and milli < 1000  # fractions may oversubscribe it
                if used[(name, d)] > 1000 and not swapping:
                    raise ScenarioError(f"{at}: GPU {d} of node {name} is over-committed")


def _running(item: dict, w: str, pods: int, nodes: set[str]
             ) -> tuple[tuple[str | None, ...], float, float | None]:
    """Where its pods already run (None: lost), since when, and since when below its gang."""
    if "running" not in item:
        return (), 0.0, None
    running = _mapping(item["running"], f"{w}.running")
    _keys(running, {"nodes", "gpus", "startedAt", "lostAt"}, f"{w}.running")
    running_nodes = tuple(None if n is None else str(n)
                          for n in _list(running.get("nodes"), f"{w}.running.nodes"))
    if len(running_nodes) != pods:
        raise ScenarioError(f"{w}.running.nodes: {len(running_nodes)} given, one per pod "
                            f"({pods}) expected")
    for node in running_nodes:
        if node is not None and node not in nodes:
            raise ScenarioError(f"{w}.running.nodes: node {node!r} does not exist")
    started_at = _number(running.get("startedAt", 0), f"{w}.running.startedAt")
    if all(n is None for n in running_nodes):
        raise ScenarioError(f"{w}.running.nodes: at least one pod must run")
    lost_at = None
    if "lostAt" in running:
        lost_at = _number(running["lostAt"], f"{w}.running.lostAt")
        if None not in running_nodes:
            raise ScenarioError(f"{w}.running.lostAt: no pod is lost (null in nodes)")
    return running_nodes, started_at, lost_at


# values -------------------------------------------------------------------------------------

def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: expected a mapping")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: expected a list")
    return value


def _keys(item: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in item if k not in allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r} (allowed: "
                            f"{', '.join(sorted(allowed))})")


def _name(value: Any, where: str, *, strict: bool = True) -> str:
    if not isinstance(value, str) or not value:
        raise ScenarioError(f"{where}: a name is required")
    if strict and not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", value):
        raise ScenarioError(f"{where}: {value!r} is not a valid name (lowercase letters, "
                            "digits, '-' and '.')")
    return value


def _number(value: Any, where: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ScenarioError(f"{where}: expected a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(f"{where}: {value} is below {minimum:g}")
    return value


def _int(value: Any, where: str, *, minimum: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}: expected a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(f"{where}: {value} is below {minimum}")
    return value


def _duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ScenarioError(f"{where}: {value} is negative")
        return float(value)
    match = _DURATION.match(str(value).strip())
    if not match:
        raise ScenarioError(f"{where}: {value!r} is not a duration (e.g. 30, 90s, 2h)")
    return float(match.group(1)) * _SECONDS[match.group(2)]
