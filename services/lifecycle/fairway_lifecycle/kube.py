"""Lifecycle's calls to the Kubernetes API: the adapter that carries out the state machine's
intents (the official client, run in worker threads), one traced CLIENT span per call."""

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from kubernetes import client
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter

from fairway_kube import ThreadedCalls, api_client
from fairway_lifecycle.core.objects import PLURAL_OF_KIND
from fairway_telemetry import spans_recorded

_tracer = trace.get_tracer("fairway.lifecycle.kube")
log = logging.getLogger("fairway.lifecycle.kube")


def _text(body: Any) -> str:
    """An answer as text (JSON for a decoded one, so the API server's message can be read
    back out of it)."""
    if isinstance(body, bytes):
        return body.decode(errors="replace")
    return json.dumps(body) if isinstance(body, dict) else str(body)


def _decoded(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else orjson.loads(body)


def _holds(there: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the object there already holds what is wanted (its spec or data, and labels):
    the server adds fields of its own, so only the wanted ones are compared."""
    if any(not _within(wanted[part], there.get(part)) for part in ("spec", "data")
           if part in wanted):
        return False
    labels = there.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in (wanted["metadata"].get("labels") or {}).items())


def _within(wanted: Any, there: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(there, dict) and all(_within(v, there.get(k))
                                               for k, v in wanted.items())
    return wanted == there


KUBE_REQUESTS = Counter(
    "fairway_lifecycle_kube_requests",
    "Kubernetes API calls lifecycle made, by operation and the HTTP status they were answered "
    "with (a pod's creation, its binding, an event, a delete ...): what each workload costs "
    "the API server.", ["operation", "code"])


class KubeError(Exception):
    def __init__(self, status: int, body: str, what: str = "pods"):
        super().__init__(f"Kubernetes API answered {status}: {body[:300]}")
        self.status = status
        self.body = body
        self.what = what  # what the refused call was for, as a phase message names it


class Kube:
    def __init__(self, kubeconfig: str | None, workers: int = 32):
        # the workers' calls, and the watches' and other long calls beside them
        self.api = api_client(kubeconfig, connections=workers + 8)
        self.core = client.CoreV1Api(self.api)
        self._calls = ThreadedCalls(workers, "kube")
        self._namespaces: set[str] = set()
        # Objects made or replaced by this process, as it last sent them: the same again is
        # no call (a workload's objects are ensured whenever its pods are made).
        self._objects: dict[tuple[str, str, str], str] = {}

    async def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any
                    ) -> tuple[int, Any]:
        return await self._traced(func.__name__, self._calls.call(func, *args, **kwargs))

    async def _post(self, operation: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST a JSON body through the client's configuration (host, credentials, TLS) and
        connection pool, without the generated method: that one validates its arguments with
        pydantic and walks the body to serialise it, about 0.3 ms of CPU on top of the 0.45
        of the HTTP exchange for a pod creation, in threads that hold the GIL the event loop
        needs. For the calls made for every pod: create and bind."""
        return await self._request(operation, "POST", path, body)

    async def _request(self, operation: str, method: str, path: str,
                       body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One call by path through the client's configuration and connection pool: for
        objects of any kind (core/objects.py), one code path instead of a generated method
        per kind."""

        def run() -> tuple[int, Any]:
            _, url, headers, _, _ = self.api.param_serialize(
                method, path, header_params={"Content-Type": "application/json",
                                             "Accept": "application/json"},
                auth_settings=["BearerToken"])
            response = self.api.rest_client.pool_manager.request(
                method, url, body=None if body is None else orjson.dumps(body),
                headers=headers)
            return response.status, response.data

        return await self._traced(operation, self._calls.run(run))

    async def _traced(self, operation: str, call: Awaitable[tuple[int, Any]]
                      ) -> tuple[int, Any]:
        # One CLIENT span per API call, child of the reconcile or handler span in hand, so a
        # submission's trace shows its Kubernetes calls (the client has no instrumentation).
        # None when spans are not recorded: nothing would show it, and the call runs in a
        # worker thread, outside the span's context anyway.
        if not spans_recorded():
            status, body = await call
            KUBE_REQUESTS.labels(operation, str(status)).inc()
            return status, body
        with _tracer.start_as_current_span(
            f"kube {operation}", kind=SpanKind.CLIENT,
            attributes={"k8s.api.operation": operation},
        ) as span:
            status, body = await call
            KUBE_REQUESTS.labels(operation, str(status)).inc()
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_status(StatusCode.ERROR, f"Kubernetes API answered {status}")
        return status, body

    async def ensure_namespace(self, name: str) -> None:
        if name in self._namespaces:
            return
        status, body = await self._call(
            self.core.create_namespace,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": name, "labels": {"fairway.io/managed": "true"}}},
        )
        if status not in (200, 201, 409):
            raise KubeError(status, _text(body))
        self._namespaces.add(name)

    async def create_pod(self, pod: dict[str, Any]) -> bool:
        """True when created, False when it already existed."""
        ns = pod["metadata"]["namespace"]
        status, body = await self._post("create_namespaced_pod",
                                        f"/api/v1/namespaces/{quote(ns, safe='')}/pods", pod)
        if status in (200, 201):
            return True
        if status == 409:
            return False
        raise KubeError(status, _text(body))

    async def ensure_object(self, manifest: dict[str, Any]) -> str:
        """Make the object, or make the one there this one: 'created', 'replaced' or
        'unchanged' (made or replaced by this process already, or the same there). A
        refusal raises KubeError naming the object."""
        kind, meta = manifest["kind"], manifest["metadata"]
        key = (kind, meta["namespace"], meta["name"])
        digest = json.dumps(manifest, sort_keys=True)
        if self._objects.get(key) == digest:
            return "unchanged"
        what = f"{kind} {meta['name']}"
        collection = (f"/api/v1/namespaces/{quote(meta['namespace'], safe='')}/"
                      f"{PLURAL_OF_KIND[kind]}")
        path = f"{collection}/{quote(meta['name'], safe='')}"
        status, body = await self._request(f"create {kind}", "POST", collection, manifest)
        outcome = "created"
        if status == 409:
            # An earlier attempt's (or one this process made before it restarted): replaced
            # at the version read, so a concurrent change is a conflict, tried again later.
            status, body = await self._request(f"read {kind}", "GET", path)
            if status >= 400:
                raise KubeError(status, _text(body), what)
            there = _decoded(body)
            outcome = "unchanged" if _holds(there, manifest) else "replaced"
            if outcome == "replaced":
                replacement = {**manifest, "metadata": {
                    **meta, "resourceVersion": there["metadata"].get("resourceVersion")}}
                status, body = await self._request(f"replace {kind}", "PUT", path,
                                                   replacement)
        if status >= 400:
            raise KubeError(status, _text(body), what)
        self._objects[key] = digest
        return outcome

    async def delete_object(self, kind: str, namespace: str, name: str) -> None:
        """Delete the object; one already gone is deleted."""
        path = (f"/api/v1/namespaces/{quote(namespace, safe='')}/{PLURAL_OF_KIND[kind]}/"
                f"{quote(name, safe='')}")
        status, body = await self._request(f"delete {kind}", "DELETE", path)
        self._objects.pop((kind, namespace, name), None)
        if status >= 400 and status != 404:
            raise KubeError(status, _text(body), f"{kind} {name}")

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int | None = None
                         ) -> None:
        kwargs = {} if grace_seconds is None else {"grace_period_seconds": grace_seconds}
        status, body = await self._call(self.core.delete_namespaced_pod, name, namespace,
                                        **kwargs)
        if status not in (200, 202, 404):
            raise KubeError(status, _text(body))

    async def evict(self, namespace: str, pod: str, grace_seconds: int | None = None) -> str:
        """'evicted' or 'gone'. The API server marks the pod DisruptionTarget and deletes it
        gracefully; a disruption budget refusing (429) is retried by the caller."""
        body: dict = {"apiVersion": "policy/v1", "kind": "Eviction",
                      "metadata": {"name": pod, "namespace": namespace}}
        if grace_seconds is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": grace_seconds}
        status, answer = await self._call(self.core.create_namespaced_pod_eviction, pod,
                                          namespace, body)
        if status in (200, 201):
            return "evicted"
        if status == 404:
            return "gone"
        raise KubeError(status, _text(answer))

    async def annotate(self, namespace: str, pod: str, annotations: dict[str, str]) -> str:
        """Merge annotations into a pod: 'patched' or 'gone'."""
        return await self._patch_metadata(namespace, pod, {"annotations": annotations})

    async def label(self, namespace: str, pod: str, labels: dict[str, str]) -> str:
        """Merge labels into a pod: 'patched' or 'gone'."""
        return await self._patch_metadata(namespace, pod, {"labels": labels})

    async def _patch_metadata(self, namespace: str, pod: str, metadata: dict[str, Any]) -> str:
        body = {"metadata": metadata}
        status, answer = await self._call(self.core.patch_namespaced_pod, pod, namespace, body)
        if status in (200, 201):
            return "patched"
        if status == 404:
            return "gone"
        raise KubeError(status, _text(answer))

    async def set_pod_condition(self, namespace: str, pod: str, condition: dict[str, Any]
                                ) -> str:
        """Set one condition of a pod's status (others kept: a strategic merge by `type`),
        as a scheduler says why a pod waits: 'patched' or 'gone'."""
        body = {"status": {"conditions": [condition]}}
        status, answer = await self._call(
            self.core.patch_namespaced_pod_status, pod, namespace, body,
            _content_type="application/strategic-merge-patch+json")
        if status in (200, 201):
            return "patched"
        if status == 404:
            return "gone"
        raise KubeError(status, _text(answer))

    async def record_event(self, pod: dict[str, Any], reason: str, message: str,
                           type_: str = "Normal") -> None:
        """A core/v1 Event about a pod, as a controller records one (best effort: an Event
        that cannot be written is logged, not retried)."""
        meta = pod["metadata"]
        now = datetime.now(UTC)
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                   "namespace": meta["namespace"], "uid": meta.get("uid")},
                "reason": reason, "message": message, "type": type_,
                "source": {"component": "fairway-lifecycle"},
                "reportingComponent": "fairway-lifecycle", "count": 1,
                "firstTimestamp": now.isoformat(), "lastTimestamp": now.isoformat()}
        status, answer = await self._call(self.core.create_namespaced_event, meta["namespace"],
                                          body)
        if status not in (200, 201):
            log.warning("event %s on pod %s/%s not recorded: %s %s", reason, meta["namespace"],
                        meta["name"], status, _text(answer))

    async def bind(self, namespace: str, pod: str, node: str) -> str:
        """'bound', 'already-bound' or 'gone' (the pod no longer exists)."""
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        status, answer = await self._post(
            "create_namespaced_pod_binding",
            f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/binding",
            body)
        if status in (200, 201):
            return "bound"
        if status == 409:
            return "already-bound"
        if status == 404:
            return "gone"
        raise KubeError(status, _text(answer))

    def close(self) -> None:
        self._calls.close()
        self.api.close()
