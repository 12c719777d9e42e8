"""Cluster profiles: which nodes the simulated cluster has and how fast its kubelets are.

A profile is the `cluster:` section of a scheduling scenario (docs/scenario-format.md), or the
same keys (`nodePools`, `nodes`) at the top level of a file. kubesim adds optional keys:
`timings` (in `cluster:` or at the top level) and, per node, `gpuProduct` and `maxPods`.
A node entry's `topology` generates topology labels (rack, block, ...) on the nodes it names,
as the scenario format does; a pool's `networkTopology` names its levels.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the key and the reason."""


DEFAULT_CPU_MILLIS = 64000
DEFAULT_MEMORY_MIB = 524288
DEFAULT_MAX_PODS = 110
DEFAULT_GPU_PRODUCT = "NVIDIA-Simulated-GPU"
# GPU memory (MiB) of known products, by the GPU feature discovery product label, for nodes
# whose profile entry gives none (fractions by memory need it).
GPU_MEMORY_MIB = {
    "NVIDIA-A100-SXM4-80GB": 81920, "NVIDIA-A100-80GB-PCIe": 81920,
    "NVIDIA-A100-SXM4-40GB": 40960, "NVIDIA-A100-PCIE-40GB": 40960,
    "NVIDIA-H100-80GB-HBM3": 81559, "NVIDIA-H100-PCIe": 81559, "NVIDIA-H200": 143771,
    "NVIDIA-L4": 23034, "NVIDIA-L40S": 46068, "Tesla-T4": 15360, "Tesla-V100-SXM2-16GB": 16384,
    "Tesla-V100-SXM2-32GB": 32768, "NVIDIA-A10G": 23028,
}


@dataclass(frozen=True, slots=True)
class Timings:
    """Default stage durations of the simulated kubelets, in seconds."""

    pull_seconds: float = 1.0
    start_seconds: float = 1.0
    jitter: float = 0.1  # each default duration varies by up to ±jitter (a fraction)
    backoff_seconds: float = 10.0  # first restart / image pull back-off, doubling ...
    backoff_max_seconds: float = 300.0  # ... up to this
    node_eviction_seconds: float = 300.0  # pods on a NotReady node are evicted after this
    # GPU memory swap: how fast a fraction's memory comes back from host memory (the swap-in
    # delay is the memory moved over this)
    gpu_swap_mib_per_second: float = 16384.0


@dataclass(frozen=True, slots=True)
class NodePool:
    name: str
    label_key: str | None = None
    label_value: str | None = None
    placement: Mapping[str, str] = field(default_factory=lambda: {"gpu": "binpack",
                                                                  "cpu": "binpack"})
    min_guaranteed_runtime_seconds: float = 0.0
    topology_levels: tuple[str, ...] = ()  # its network topology: label keys, widest first
    # the API's gpuResourceOptimization (GPU memory swap, node-level scheduler), for `make up`
    # to create the pool with (the API checks it)
    gpu_resource_optimization: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    labels: Mapping[str, str]
    gpus: int = 0
    gpu_memory_mib: int = 0
    gpu_product: str | None = None
    cpu_millis: int = DEFAULT_CPU_MILLIS
    memory_mib: int = DEFAULT_MEMORY_MIB
    max_pods: int = DEFAULT_MAX_PODS
    ready: bool = True


@dataclass(frozen=True, slots=True)
class Profile:
    nodes: tuple[NodeSpec, ...]
    node_pools: tuple[NodePool, ...] = ()
    timings: Timings = field(default_factory=Timings)
    source: str | None = None

    def node(self, name: str) -> NodeSpec | None:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        return None


_SCENARIO_KEYS = {"cluster", "simulation", "org", "workloads", "timings"}
_CLUSTER_KEYS = {"nodePools", "nodes", "timings"}
_POOL_KEYS = {"name", "labelKey", "labelValue", "placement", "minGuaranteedRuntime",
              "networkTopology", "gpuResourceOptimization"}
_NODE_KEYS = {"name", "labels", "gpus", "gpuMemoryMiB", "gpuProduct", "cpuMillis", "memoryMiB",
              "maxPods", "ready", "topology", "gpuSwap"}
GPU_SWAP_LABEL = "fairway.io/gpu-swap"  # `gpuSwap: true`: its GPU memory can be swapped out
_TOPOLOGY_KEYS = {"nodeLabel", "nodesPerDomain", "prefix"}
_TIMING_KEYS = {"pullSeconds", "startSeconds", "jitter", "backoffSeconds",
                "backoffMaxSeconds", "nodeEvictionSeconds", "gpuSwapMiBPerSecond"}
_PLACEMENTS = {"binpack", "spread"}

_RANGE = re.compile(r"\{([^{}]*)\.\.([^{}]*)\}")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def load_profile(source: str | Path | Mapping[str, Any]) -> Profile:
    """Load a profile from a YAML file path or from an already parsed mapping."""
    origin: str | None = None
    if isinstance(source, Mapping):
        doc: Any = source
    else:
        path = Path(source)
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read profile: {exc.strerror or exc}") from exc
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return _parse(doc, origin)
    except ProfileError as exc:
        if origin:
            raise ProfileError(f"{origin}: {exc}") from None
        raise


def parse_profile_text(text: str) -> Profile:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"not valid YAML: {exc}") from exc
    return _parse(doc, None)


def expand_name(pattern: str) -> list[str]:
    """Expand `{a..b}` ranges (numbers, zero padding kept; or single letters)."""
    parts: list[list[str]] = []
    pos = 0
    for match in _RANGE.finditer(pattern):
        parts.append([pattern[pos:match.start()]])
        parts.append(_expand_range(match.group(1).strip(), match.group(2).strip(),
                                   match.group(0)))
        pos = match.end()
    parts.append([pattern[pos:]])
    return ["".join(combo) for combo in itertools.product(*parts)]


def _expand_range(start: str, end: str, text: str) -> list[str]:
    if start.isdigit() and end.isdigit():
        lo, hi = int(start), int(end)
        if lo > hi:
            raise ProfileError(f"range {text}: start is greater than end")
        if hi - lo >= 100_000:
            raise ProfileError(f"range {text}: more than 100000 names")
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        return [str(i).zfill(width) for i in range(lo, hi + 1)]
    if len(start) == 1 and len(end) == 1 and start.isalpha() and end.isalpha():
        if start > end:
            raise ProfileError(f"range {text}: start is greater than end")
        return [chr(c) for c in range(ord(start), ord(end) + 1)]
    raise ProfileError(f"range {text}: expected {{1..8}} (numbers) or {{a..d}} (letters)")


def _parse(doc: Any, origin: str | None) -> Profile:
    if doc is None:
        raise ProfileError("the profile is empty; expected `cluster:` or `nodes:`")
    if not isinstance(doc, Mapping):
        raise ProfileError(f"the profile must be a mapping, got {_typename(doc)}")
    timings_doc: Any = None
    timings_where = "timings"
    if "cluster" in doc:
        _no_unknown(doc, _SCENARIO_KEYS, "")
        cluster = doc["cluster"]
        if not isinstance(cluster, Mapping):
            raise ProfileError(f"cluster: must be a mapping, got {_typename(cluster)}")
        prefix = "cluster."
        _no_unknown(cluster, _CLUSTER_KEYS, prefix)
        if "timings" in cluster and "timings" in doc:
            raise ProfileError("timings: given both at the top level and in cluster")
        if "timings" in cluster:
            timings_doc, timings_where = cluster["timings"], "cluster.timings"
        else:
            timings_doc = doc.get("timings")
    else:
        cluster = doc
        prefix = ""
        _no_unknown(doc, _CLUSTER_KEYS, "")
        timings_doc = doc.get("timings")
    pools = _parse_pools(cluster.get("nodePools"), f"{prefix}nodePools")
    nodes = _parse_nodes(cluster.get("nodes"), f"{prefix}nodes")
    timings = _parse_timings(timings_doc, timings_where)
    return Profile(nodes=tuple(nodes), node_pools=tuple(pools), timings=timings, source=origin)


def _parse_pools(raw: Any, where: str) -> list[NodePool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ProfileError(f"{where}: must be a list, got {_typename(raw)}")
    pools: list[NodePool] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ProfileError(f"{at}: must be a mapping, got {_typename(entry)}")
        _no_unknown(entry, _POOL_KEYS, f"{at}.")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ProfileError(f"{at}.name: required, a non-empty string")
        at = f"{where}[{i}] ({name})"
        if name in seen:
            raise ProfileError(f"{at}.name: duplicate pool name")
        seen.add(name)
        key, value = entry.get("labelKey"), entry.get("labelValue")
        if name != "default" or key is not None or value is not None:
            if not isinstance(key, str) or not key:
                raise ProfileError(f"{at}.labelKey: required, a label key such as "
                                   "fairway.io/node-pool")
            _check_label_key(key, f"{at}.labelKey")
            value = _label_value(value, f"{at}.labelValue", required=True)
        placement = {"gpu": "binpack", "cpu": "binpack"}
        raw_placement = entry.get("placement")
        if raw_placement is not None:
            if not isinstance(raw_placement, Mapping):
                raise ProfileError(f"{at}.placement: must be a mapping like "
                                   "{gpu: binpack, cpu: spread}")
            for res, mode in raw_placement.items():
                if res not in ("gpu", "cpu"):
                    raise ProfileError(f"{at}.placement.{res}: unknown key (expected gpu, cpu)")
                if mode not in _PLACEMENTS:
                    raise ProfileError(f"{at}.placement.{res}: must be binpack or spread, "
                                       f"got {mode!r}")
                placement[res] = mode
        runtime = 0.0
        if entry.get("minGuaranteedRuntime") is not None:
            runtime = parse_duration(entry["minGuaranteedRuntime"], f"{at}.minGuaranteedRuntime")
        levels = _parse_network_topology(entry.get("networkTopology"), f"{at}.networkTopology")
        optimization = _optimization(entry, at)
        pools.append(NodePool(name=name, label_key=key, label_value=value, placement=placement,
                              min_guaranteed_runtime_seconds=runtime, topology_levels=levels,
                              gpu_resource_optimization=optimization))
    return pools


def _parse_nodes(raw: Any, where: str) -> list[NodeSpec]:
    if raw is None:
        raise ProfileError(f"{where}: required, a list of nodes")
    if not isinstance(raw, list):
        raise ProfileError(f"{where}: must be a list, got {_typename(raw)}")
    if not raw:
        raise ProfileError(f"{where}: a profile needs at least one node")
    nodes: list[NodeSpec] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ProfileError(f"{at}: must be a mapping, got {_typename(entry)}")
        _no_unknown(entry, _NODE_KEYS, f"{at}.")
        pattern = entry.get("name")
        if not isinstance(pattern, str) or not pattern:
            raise ProfileError(f"{at}.name: required, a non-empty string")
        at = f"{where}[{i}] ({pattern})"
        try:
            names = expand_name(pattern)
        except ProfileError as exc:
            raise ProfileError(f"{at}.name: {exc}") from None
        labels = _parse_node_labels(entry.get("labels"), at)
        gpus = _int(entry, "gpus", 0, at, minimum=0)
        gpu_memory = _int(entry, "gpuMemoryMiB", 0, at, minimum=0)
        cpu = _int(entry, "cpuMillis", DEFAULT_CPU_MILLIS, at, minimum=1)
        memory = _int(entry, "memoryMiB", DEFAULT_MEMORY_MIB, at, minimum=1)
        max_pods = _int(entry, "maxPods", DEFAULT_MAX_PODS, at, minimum=1)
        if gpu_memory and not gpus:
            raise ProfileError(f"{at}.gpuMemoryMiB: set, but the node has no gpus")
        product = entry.get("gpuProduct")
        if product is not None:
            product = _label_value(product, f"{at}.gpuProduct", required=True)
            if not gpus:
                raise ProfileError(f"{at}.gpuProduct: set, but the node has no gpus")
        ready = entry.get("ready", True)
        if not isinstance(ready, bool):
            raise ProfileError(f"{at}.ready: must be true or false, got {ready!r}")
        labels = _with_swap_label(entry, labels, gpus, at)
        if gpus and not gpu_memory:
            gpu_memory = GPU_MEMORY_MIB.get(
                product or labels.get("nvidia.com/gpu.product", ""), 0)
        generators = _parse_topology(entry.get("topology"), f"{at}.topology")
        for index, name in enumerate(names):
            _check_node_name(name, at, seen)
            placed = {label: f"{prefix}{index // per + 1}" for label, per, prefix in generators}
            nodes.append(NodeSpec(name=name, labels={**labels, **placed}, gpus=gpus,
                                  gpu_memory_mib=gpu_memory, gpu_product=product,
                                  cpu_millis=cpu, memory_mib=memory, max_pods=max_pods,
                                  ready=ready))
    return nodes


def _optimization(entry: Mapping[str, Any], at: str) -> dict[str, Any]:
    """A pool's `gpuResourceOptimization`, as the API takes it (the API checks it)."""
    optimization = entry.get("gpuResourceOptimization") or {}
    if not isinstance(optimization, Mapping):
        raise ProfileError(f"{at}.gpuResourceOptimization: must be a mapping like "
                           "{swapEnabled: true, cpuSwapMemorySize: 100Gi}")
    return dict(optimization)


def _with_swap_label(entry: Mapping[str, Any], labels: dict[str, str], gpus: int, at: str
                     ) -> dict[str, str]:
    """`gpuSwap: true`: the node is labelled swap-capable (GPU memory swap)."""
    swap = entry.get("gpuSwap", False)
    if not isinstance(swap, bool):
        raise ProfileError(f"{at}.gpuSwap: must be true or false, got {swap!r}")
    if swap and not gpus:
        raise ProfileError(f"{at}.gpuSwap: set, but the node has no gpus")
    return {**labels, GPU_SWAP_LABEL: "true"} if swap else labels


def _parse_network_topology(raw: Any, at: str) -> tuple[str, ...]:
    """`networkTopology: {levels: [{nodeLabel: KEY}, ...]}`, the widest level first."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or set(raw) != {"levels"}:
        raise ProfileError(f"{at}: must be a mapping like {{levels: [{{nodeLabel: KEY}}]}}")
    levels = raw["levels"]
    if not isinstance(levels, list) or not levels:
        raise ProfileError(f"{at}.levels: must be a non-empty list")
    out: list[str] = []
    for i, level in enumerate(levels):
        where = f"{at}.levels[{i}]"
        if not isinstance(level, Mapping) or set(level) != {"nodeLabel"}:
            raise ProfileError(f"{where}: must be a mapping like {{nodeLabel: KEY}}")
        key = level["nodeLabel"]
        if not isinstance(key, str) or not key:
            raise ProfileError(f"{where}.nodeLabel: required, a label key")
        _check_label_key(key, f"{where}.nodeLabel")
        if key in out:
            raise ProfileError(f"{where}.nodeLabel: level {key} is named twice")
        out.append(key)
    return tuple(out)


def _parse_topology(raw: Any, at: str) -> list[tuple[str, int, str]]:
    """A node entry's `topology`: labels generated on the nodes it names, in order: every
    `nodesPerDomain` nodes the next domain (`prefix` + its number, from 1)."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise ProfileError(f"{at}: must be a non-empty list like "
                           "[{nodeLabel: KEY, nodesPerDomain: 8}]")
    out: list[tuple[str, int, str]] = []
    for i, entry in enumerate(raw):
        where = f"{at}[{i}]"
        if not isinstance(entry, Mapping):
            raise ProfileError(f"{where}: must be a mapping, got {_typename(entry)}")
        _no_unknown(entry, _TOPOLOGY_KEYS, f"{where}.")
        key = entry.get("nodeLabel")
        if not isinstance(key, str) or not key:
            raise ProfileError(f"{where}.nodeLabel: required, a label key")
        _check_label_key(key, f"{where}.nodeLabel")
        per = _int(entry, "nodesPerDomain", 0, where, minimum=1)
        prefix = entry.get("prefix", key.rsplit("/", 1)[-1] + "-")
        _label_value(f"{prefix}1", f"{where}.prefix", required=True)
        out.append((key, per, prefix))
    return out


def _parse_node_labels(raw: Any, at: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    if raw is None:
        return labels
    if not isinstance(raw, Mapping):
        raise ProfileError(f"{at}.labels: must be a mapping of label keys to values")
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ProfileError(f"{at}.labels: key {key!r} must be a string")
        _check_label_key(key, f"{at}.labels.{key}")
        labels[key] = _label_value(value, f"{at}.labels.{key}")
    return labels


def _check_node_name(name: str, at: str, seen: dict[str, str]) -> None:
    """A valid node name, declared once; remembers where it was declared."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise ProfileError(f"{at}.name: {name!r} is not a valid node name (lower case "
                           "letters, digits, '-' and '.', at most 253 characters)")
    if name in seen:
        raise ProfileError(f"{at}.name: node {name!r} is also declared by {seen[name]}")
    seen[name] = at


def _parse_timings(raw: Any, where: str) -> Timings:
    if raw is None:
        return Timings()
    if not isinstance(raw, Mapping):
        raise ProfileError(f"{where}: must be a mapping like {{pullSeconds: 1, startSeconds: 1, "
                           "jitter: 0.1}")
    _no_unknown(raw, _TIMING_KEYS, f"{where}.")
    values: dict[str, float] = {}
    for key, default in (("pullSeconds", 1.0), ("startSeconds", 1.0), ("jitter", 0.1),
                         ("backoffSeconds", 10.0), ("backoffMaxSeconds", 300.0),
                         ("nodeEvictionSeconds", 300.0), ("gpuSwapMiBPerSecond", 16384.0)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ProfileError(f"{where}.{key}: must be a non-negative number, got {value!r}")
        values[key] = float(value)
    if values["jitter"] >= 1:
        raise ProfileError(f"{where}.jitter: must be a fraction below 1, got {values['jitter']}")
    return Timings(pull_seconds=values["pullSeconds"], start_seconds=values["startSeconds"],
                   jitter=values["jitter"], backoff_seconds=values["backoffSeconds"],
                   backoff_max_seconds=max(values["backoffMaxSeconds"],
                                           values["backoffSeconds"]),
                   node_eviction_seconds=values["nodeEvictionSeconds"],
                   gpu_swap_mib_per_second=values["gpuSwapMiBPerSecond"])


def parse_duration(raw: Any, where: str) -> float:
    """Go-style durations (`90s`, `2h`, `1h30m`, `0`) or a number of seconds."""
    if isinstance(raw, bool):
        raise ProfileError(f"{where}: must be a duration like 90s or 2h, got {raw!r}")
    if isinstance(raw, int | float):
        if raw < 0:
            raise ProfileError(f"{where}: must not be negative")
        return float(raw)
    if not isinstance(raw, str):
        raise ProfileError(f"{where}: must be a duration like 90s or 2h, got {raw!r}")
    text = raw.strip()
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ProfileError(f"{where}: must be a duration like 90s, 15m or 2h, got {raw!r}")
    return total


def _int(entry: Mapping[str, Any], key: str, default: int, at: str, minimum: int) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{at}.{key}: must be a whole number, got {value!r}")
    if value < minimum:
        what = "non-negative" if minimum == 0 else f"at least {minimum}"
        raise ProfileError(f"{at}.{key}: must be {what}, got {value}")
    return value


def _no_unknown(doc: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in doc:
        if key not in allowed:
            raise ProfileError(f"{prefix}{key}: unknown key (expected one of "
                               f"{', '.join(sorted(allowed))})")


def _check_label_key(key: str, where: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise ProfileError(f"{where}: label key prefix {prefix!r} must be a DNS subdomain")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        raise ProfileError(f"{where}: label key {key!r} is not valid (name part: at most 63 "
                           "letters, digits, '-', '_' or '.', starting and ending alphanumeric)")


def _label_value(value: Any, where: str, required: bool = False) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise ProfileError(f"{where}: must be a string, got {_typename(value)}")
    if required and not value:
        raise ProfileError(f"{where}: required, a non-empty label value")
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        raise ProfileError(f"{where}: {value!r} is not a valid label value (at most 63 letters, "
                           "digits, '-', '_' or '.', starting and ending alphanumeric)")
    return value


def _typename(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
