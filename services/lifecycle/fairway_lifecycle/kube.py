"""Lifecycle's calls to the Kubernetes API: the adapter that carries out the state machine's
intents (the official client, run in worker threads), one traced CLIENT span per call."""

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from kubernetes import client
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from fairway_kube import ThreadedCalls, api_client

_tracer = trace.get_tracer("fairway.lifecycle.kube")


class KubeError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"Kubernetes API answered {status}: {body[:300]}")
        self.status = status
        self.body = body


class Kube:
    def __init__(self, kubeconfig: str | None, workers: int = 8):
        self.api = api_client(kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self._calls = ThreadedCalls(workers, "kube")
        self._namespaces: set[str] = set()

    async def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any
                    ) -> tuple[int, Any]:
        return await self._traced(func.__name__, self._calls.call(func, *args, **kwargs))

    async def _post(self, operation: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST a JSON body through the client's configuration (host, credentials, TLS) and
        connection pool, without the generated method: that one validates its arguments with
        pydantic and walks the body to serialise it, about 0.3 ms of CPU on top of the 0.45
        of the HTTP exchange for a pod creation, in threads that hold the GIL the event loop
        needs. For the calls made for every pod: create and bind."""

        def run() -> tuple[int, Any]:
            _, url, headers, _, _ = self.api.param_serialize(
                "POST", path, header_params={"Content-Type": "application/json",
                                             "Accept": "application/json"},
                auth_settings=["BearerToken"])
            response = self.api.rest_client.pool_manager.request(
                "POST", url, body=json.dumps(body).encode(), headers=headers)
            return response.status, response.data

        return await self._traced(operation, self._calls.run(run))

    async def _traced(self, operation: str, call: Awaitable[tuple[int, Any]]
                      ) -> tuple[int, Any]:
        # One CLIENT span per API call, child of the reconcile or handler span in hand, so a
        # submission's trace shows its Kubernetes calls (the client has no instrumentation).
        with _tracer.start_as_current_span(
            f"kube {operation}", kind=SpanKind.CLIENT,
            attributes={"k8s.api.operation": operation},
        ) as span:
            status, body = await call
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
            raise KubeError(status, str(body))
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
        raise KubeError(status, str(body))

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int | None = None
                         ) -> None:
        kwargs = {} if grace_seconds is None else {"grace_period_seconds": grace_seconds}
        status, body = await self._call(self.core.delete_namespaced_pod, name, namespace,
                                        **kwargs)
        if status not in (200, 202, 404):
            raise KubeError(status, str(body))

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
        raise KubeError(status, str(answer))

    async def annotate(self, namespace: str, pod: str, annotations: dict[str, str]) -> str:
        """Merge annotations into a pod: 'patched' or 'gone'."""
        body = {"metadata": {"annotations": annotations}}
        status, answer = await self._call(self.core.patch_namespaced_pod, pod, namespace, body)
        if status in (200, 201):
            return "patched"
        if status == 404:
            return "gone"
        raise KubeError(status, str(answer))

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
        raise KubeError(status, str(answer))

    def close(self) -> None:
        self._calls.close()
        self.api.close()
