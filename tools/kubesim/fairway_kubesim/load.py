"""Simulated request load on inference servers, and the metrics their replicas would report.

On a real cluster an inference server's replicas count the requests they serve and
Prometheus scrapes them; Fairway's autoscaler reads the result. kubesim plays both parts:

- **Load.** Requests arrive at a workload (every pod labelled with one `fairway.io/workload-id`
  and `fairway.io/workload-type: inference`) at a rate given by the pod annotation
  `sim.fairway.io/load`, a JSON list of `[seconds, requests per second]` steps counted
  from when kubesim first saw the workload (`[[0, 5], [30, 50], [90, 0]]`: 5 req/s, 50 from
  30 s, none from 90 s; the last step lasts), or set at run time through the admin endpoint
  (`PUT /admin/load/{namespace}/{workloadId}`), which wins over the annotation until it is
  deleted. The profile is remembered when the last replica goes (a server scaled to zero
  still receives requests: they wait for a replica, as at Knative's activator).
- **Sharing.** The requests are shared evenly by the workload's ready replicas, as the
  Service in front of them would share them.
- **Latency.** Each replica serves a request in `kubesim.fairway.io/service-seconds`
  (default 0.1 s) when idle, longer as it fills: `service / (1 - utilization)` (one server
  queue, utilization = its requests per second * service seconds, held below 0.95).
  Concurrency, the requests in flight, follows by Little's law: throughput * latency.

`GET /metrics/serving` answers in the Prometheus text format, one series per pod
(`fairway_serving_pod_throughput`, `…_concurrency`, `…_latency_seconds`) and per workload
(`fairway_serving_requests_per_second`: what arrives, even at zero replicas;
`fairway_serving_ready_replicas`), each labelled `namespace` and `workload_id` (and `pod`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from .errors import bad_request

if TYPE_CHECKING:
    from .store import Store

LOAD_ANNOTATION = "sim.fairway.io/load"
SERVICE_SECONDS_ANNOTATION = "kubesim.fairway.io/service-seconds"
WORKLOAD_LABEL = "fairway.io/workload-id"
TYPE_LABEL = "fairway.io/workload-type"
DEFAULT_SERVICE_SECONDS = 0.1
MAX_UTILIZATION = 0.95


Steps = tuple[tuple[float, float], ...]


def parse_profile(text: str) -> Steps:
    """`[[seconds, requests/s], ...]` → steps in time order; ValueError says what is wrong."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("must be JSON: a list of [seconds, requests per second]") from None
    return steps_of(value)


def steps_of(value: Any) -> Steps:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of [seconds, requests per second]")
    steps = []
    for step in value:
        if (not isinstance(step, list) or len(step) != 2
                or not all(_number(x) and x >= 0 for x in step)):
            raise ValueError(f"{step!r} is not [seconds, requests per second], both >= 0")
        steps.append((float(step[0]), float(step[1])))
    return tuple(sorted(steps))


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def rate_at(steps: Steps, elapsed: float) -> float:
    """The requests per second of a step profile `elapsed` seconds in (0 before its first)."""
    rate = 0.0
    for start, rps in steps:
        if start > elapsed:
            break
        rate = rps
    return rate


@dataclass(frozen=True)
class PodLoad:
    name: str
    throughput: float
    concurrency: float
    latency_seconds: float


def pod_load(name: str, requests_per_second: float, service_seconds: float) -> PodLoad:
    """One replica's share: its throughput, latency (one server queue) and concurrency
    (Little's law)."""
    utilization = min(requests_per_second * service_seconds, MAX_UTILIZATION)
    latency = service_seconds / (1 - utilization)
    return PodLoad(name, requests_per_second, requests_per_second * latency, latency)


@dataclass(frozen=True)
class WorkloadLoad:
    namespace: str
    workload_id: str
    requests_per_second: float
    pods: tuple[PodLoad, ...]


class LoadModel:
    """The load of every inference workload kubesim has seen, read from its pods."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.first_seen: dict[tuple[str, str], float] = {}
        self.profiles: dict[tuple[str, str], Steps] = {}
        self.service_seconds: dict[tuple[str, str], float] = {}
        self.overrides: dict[tuple[str, str], float] = {}

    def set_rate(self, namespace: str, workload_id: str, requests_per_second: float) -> None:
        key = (namespace, workload_id)
        self.overrides[key] = requests_per_second
        self.first_seen.setdefault(key, self.clock())

    def clear_rate(self, namespace: str, workload_id: str) -> bool:
        return self.overrides.pop((namespace, workload_id), None) is not None

    def current(self) -> list[WorkloadLoad]:
        """Every inference workload's load now, with its ready replicas' shares."""
        now = self.clock()
        ready: dict[tuple[str, str], list[str]] = {}
        for pod in self._serving_pods():
            meta = pod["metadata"]
            key = (meta["namespace"], meta["labels"][WORKLOAD_LABEL])
            self._remember(key, meta.get("annotations") or {}, now)
            if _ready(pod):
                ready.setdefault(key, []).append(meta["name"])
        out = []
        for key in sorted(set(self.first_seen) | set(ready)):
            rate = self._rate(key, now)
            names = sorted(ready.get(key, ()))
            share = rate / len(names) if names else 0.0
            service = self.service_seconds.get(key, DEFAULT_SERVICE_SECONDS)
            out.append(WorkloadLoad(key[0], key[1], rate,
                                    tuple(pod_load(n, share, service) for n in names)))
        return out

    def _serving_pods(self) -> Iterable[dict[str, Any]]:
        def serving(pod: Mapping[str, Any]) -> bool:
            labels = pod["metadata"].get("labels") or {}
            return labels.get(TYPE_LABEL) == "inference" and WORKLOAD_LABEL in labels

        return (s.obj for s in self.store["pods"].select(pred=serving))

    def _remember(self, key: tuple[str, str], annotations: Mapping[str, str],
                  now: float) -> None:
        self.first_seen.setdefault(key, now)
        if LOAD_ANNOTATION in annotations and key not in self.profiles:
            try:
                self.profiles[key] = parse_profile(annotations[LOAD_ANNOTATION])
            except ValueError:
                self.profiles[key] = ()  # a pod with a bad profile gets no load
        if SERVICE_SECONDS_ANNOTATION in annotations:
            try:
                self.service_seconds[key] = max(
                    float(annotations[SERVICE_SECONDS_ANNOTATION]), 1e-6)
            except ValueError:
                pass

    def _rate(self, key: tuple[str, str], now: float) -> float:
        if key in self.overrides:
            return self.overrides[key]
        steps = self.profiles.get(key)
        return rate_at(steps, now - self.first_seen[key]) if steps else 0.0


def _ready(pod: Mapping[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False  # a terminating pod is taken out of the Service's endpoints
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def render(loads: Iterable[WorkloadLoad]) -> str:
    """The Prometheus text exposition of the loads."""
    series: dict[str, list[str]] = {
        "fairway_serving_requests_per_second": [],
        "fairway_serving_ready_replicas": [],
        "fairway_serving_pod_throughput": [],
        "fairway_serving_pod_concurrency": [],
        "fairway_serving_pod_latency_seconds": [],
    }
    for w in loads:
        labels = f'namespace="{w.namespace}",workload_id="{w.workload_id}"'
        series["fairway_serving_requests_per_second"].append(
            f"{{{labels}}} {w.requests_per_second:g}")
        series["fairway_serving_ready_replicas"].append(f"{{{labels}}} {len(w.pods)}")
        for pod in w.pods:
            at = f'{{{labels},pod="{pod.name}"}}'
            series["fairway_serving_pod_throughput"].append(f"{at} {pod.throughput:g}")
            series["fairway_serving_pod_concurrency"].append(f"{at} {pod.concurrency:g}")
            series["fairway_serving_pod_latency_seconds"].append(
                f"{at} {pod.latency_seconds:g}")
    lines = []
    for name, samples in series.items():
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{sample}" for sample in samples)
    return "\n".join(lines) + "\n"


def add_load_routes(app: web.Application, model: LoadModel, admin: bool) -> None:
    """`GET /metrics/serving` always; the admin's load override only with `--admin`."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=render(model.current()),
                            content_type="text/plain", charset="utf-8")

    async def put_load(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            raise bad_request("the body must be JSON") from None
        rate = body.get("requestsPerSecond") if isinstance(body, dict) else None
        if not _number(rate) or rate < 0:
            raise bad_request('expected {"requestsPerSecond": a number >= 0}')
        ns, wid = request.match_info["namespace"], request.match_info["workload_id"]
        model.set_rate(ns, wid, float(rate))
        return web.json_response({"namespace": ns, "workloadId": wid,
                                  "requestsPerSecond": float(rate)})

    async def delete_load(request: web.Request) -> web.Response:
        ns, wid = request.match_info["namespace"], request.match_info["workload_id"]
        return web.json_response({"cleared": model.clear_rate(ns, wid)})

    app.router.add_get("/metrics/serving", metrics)
    if admin:
        app.router.add_put("/admin/load/{namespace}/{workload_id}", put_load)
        app.router.add_delete("/admin/load/{namespace}/{workload_id}", delete_load)
