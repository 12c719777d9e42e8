"""The Kubernetes REST API over aiohttp: discovery, nodes, namespaces, pods, binding, watch."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from .errors import (
    ApiError,
    bad_request,
    conflict,
    forbidden,
    gone,
    internal,
    invalid,
    method_not_allowed,
    not_found,
    route_not_found,
    success_status,
)
from .events import EventLog
from .objects import (
    KUBE_VERSION,
    _check_meta_maps,
    admit_namespace,
    admit_object,
    admit_pod,
    check_sim_annotations,
    now_rfc3339,
)
from .patch import apply_patch
from .selectors import Predicate, combine, parse_field_selector, parse_label_selector
from .services import DISCOVERY, DISCOVERY_GROUP, DISCOVERY_V1, RESOURCE_DOCS, pod_spec_causes
from .store import DEFAULT_WATCH_QUEUE, DELETED, Event, Resource, Store, Stored
from .tables import event_transform, table, wants_table
from .workloads import APPS_V1, BATCH_V1, KUBEFLOW_V1
from .workloads import GROUPS as WORKLOAD_GROUPS

log = logging.getLogger("fairway_kubesim.api")

JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_TRUE = {"true", "1", "True", "TRUE", "yes"}


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type=JSON)


def raw_response(raw: bytes, status: int = 200) -> web.Response:
    return web.Response(body=raw, status=status, content_type=JSON)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "") in _TRUE


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r}") from None


def _rv_param(value: str | None) -> int | None:
    """A resourceVersion query value; None means "now, with the current state first"."""
    if value is None or value in ("", "0"):
        return None
    try:
        rv = int(value)
    except ValueError:
        raise bad_request(f'resourceVersion: Invalid value: "{value}": must be a resource '
                          "version returned by this server") from None
    if rv < 0:
        raise bad_request(f'resourceVersion: Invalid value: "{value}"')
    return rv


async def _body(request: web.Request) -> Any:
    data = await request.read()
    if not data:
        return None
    if "protobuf" in request.headers.get("Content-Type", ""):
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                       "unsupported format: application/vnd.kubernetes.protobuf; accepted "
                       "media types include: application/json")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the body of the request was in an unknown format; accepted media "
                          f"types include: application/json ({exc})") from None


_RESOURCE_DOCS: list[dict[str, Any]] = [
    {"name": "bindings", "singularName": "binding", "namespaced": True, "kind": "Binding",
     "verbs": ["create"]},
    {"name": "namespaces", "singularName": "namespace", "namespaced": False,
     "kind": "Namespace", "verbs": ["create", "delete", "get", "list", "watch"],
     "shortNames": ["ns"]},
    {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
     "verbs": ["delete", "get", "list", "watch"], "shortNames": ["no"]},
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
     "verbs": ["create", "delete", "get", "list", "watch"], "shortNames": ["po"],
     "categories": ["all"]},
    {"name": "pods/binding", "singularName": "", "namespaced": True, "kind": "Binding",
     "verbs": ["create"]},
    {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod",
     "verbs": ["get", "patch", "update"]},
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
     "verbs": ["get"]},
    {"name": "pods/eviction", "singularName": "", "namespaced": True, "kind": "Eviction",
     "group": "policy", "version": "v1", "verbs": ["create"]},
    {"name": "events", "singularName": "event", "namespaced": True, "kind": "Event",
     "verbs": ["create", "delete", "get", "list", "watch"], "shortNames": ["ev"]},
]
_RESOURCE_DOCS += RESOURCE_DOCS
for _doc in _RESOURCE_DOCS:
    if _doc["name"] == "pods":
        _doc["verbs"] = ["create", "delete", "get", "list", "patch", "update", "watch"]

COORDINATION = "coordination.k8s.io"
COORDINATION_V1 = COORDINATION + "/v1"
_COORDINATION_DOCS: list[dict[str, Any]] = [
    {"name": "leases", "singularName": "lease", "namespaced": True, "kind": "Lease",
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
]
_GROUPS = [{"name": COORDINATION, "versions": [{"groupVersion": COORDINATION_V1,
                                                  "version": "v1"}],
            "preferredVersion": {"groupVersion": COORDINATION_V1, "version": "v1"}},
           DISCOVERY_GROUP, *WORKLOAD_GROUPS]


def _openapi_core() -> dict[str, Any]:
    return _openapi_doc("", [
        ("/api/v1/namespaces/{namespace}/pods/{name}", "Pod"),
        ("/api/v1/namespaces/{name}", "Namespace"),
        ("/api/v1/namespaces/{namespace}/bindings", "Binding"),
        ("/api/v1/namespaces/{namespace}/services/{name}", "Service"),
        ("/api/v1/namespaces/{namespace}/endpoints/{name}", "Endpoints"),
        ("/api/v1/namespaces/{namespace}/configmaps/{name}", "ConfigMap")])


def _openapi_doc(group: str, kinds: list[tuple[str, str]]) -> dict[str, Any]:
    param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string",
                                                                   "uniqueItems": True}}
    paths: dict[str, Any] = {}
    for path, kind in kinds:
        gvk = {"group": group, "version": "v1", "kind": kind}
        op = {"x-kubernetes-group-version-kind": gvk, "parameters": [param],
              "responses": {"200": {"description": "OK"}}}
        paths[path] = {"patch": op, "post": op}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (kubesim)",
                                         "version": KUBE_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


_OPENAPI_CORE = _openapi_core()
_OPENAPI_DISCOVERY = _openapi_doc(DISCOVERY, [
    (f"/apis/{DISCOVERY_V1}/namespaces/{{namespace}}/endpointslices/{{name}}", "EndpointSlice")])
_OPENAPI_WORKLOADS = {
    gv: _openapi_doc(gv.split("/")[0], [
        (f"/apis/{gv}/namespaces/{{namespace}}/{plural}/{{name}}", kind)
        for plural, kind in pairs])
    for gv, pairs in ((BATCH_V1, [("jobs", "Job")]),
                      (APPS_V1, [("deployments", "Deployment"), ("replicasets", "ReplicaSet"),
                                 ("statefulsets", "StatefulSet")]),
                      (KUBEFLOW_V1, [("pytorchjobs", "PyTorchJob")]))}
_OPENAPI_HASH = "kubesim-2"


class Api:
    """Request handlers over a `Store`; the kubelet reacts to what they write."""

    def __init__(self, store: Store, bookmark_interval: float = 10.0,
                 min_request_timeout: float = 1800.0,
                 watch_queue: int = DEFAULT_WATCH_QUEUE) -> None:
        self.store = store
        self.pods = store["pods"]
        self.nodes = store["nodes"]
        self.namespaces = store["namespaces"]
        self.events = store["events"]
        self.leases = store["leases"]
        self.event_log: EventLog = EventLog(self.events)
        self.faults: Any = None  # an admin.Faults when fault injection is enabled
        self.bookmark_interval = bookmark_interval
        self.min_request_timeout = min_request_timeout
        self.watch_queue = watch_queue
        self.requests = 0
        self._terminating: set[str] = set()
        # routes of other modules (network_api: services, endpoints, configmaps, slices)
        self.extra_routes: list[tuple[str, str, Any]] = []
        store.listen(self._on_event)

    # application ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        add = {"GET": app.router.add_get, "POST": app.router.add_post,
               "PUT": app.router.add_put, "PATCH": app.router.add_patch,
               "DELETE": app.router.add_delete}
        for method, path, handler in self._routes():
            add[method](path, handler)
        return app

    def _routes(self) -> list[tuple[str, str, Any]]:
        """Every path kubesim serves: (method, path, handler)."""
        routes: list[tuple[str, str, Any]] = [
            ("GET", path, self.health) for path in ("/healthz", "/livez", "/readyz")]
        for slash in ("", "/"):  # the generated client asks for /version/, /apis/ ...
            routes += [("GET", "/version" + slash, self.version),
                       ("GET", "/api" + slash, self.api_versions),
                       ("GET", "/api/v1" + slash, self.api_v1),
                       ("GET", "/apis" + slash, self.apis)]
        pod = "/api/v1/namespaces/{ns}/pods/{name}"
        routes += [
            ("GET", "/openapi/v3", self.openapi_v3),
            ("GET", "/openapi/v3/api/v1", self.openapi_v3_core),
            ("GET", f"/openapi/v3/apis/{DISCOVERY_V1}", self.openapi_v3_discovery),
            *[("GET", f"/openapi/v3/apis/{gv}", self._openapi_workloads(gv))
              for gv in _OPENAPI_WORKLOADS],
            # nodes
            ("GET", "/api/v1/nodes", self.list_nodes),
            ("GET", "/api/v1/watch/nodes", self.watch_nodes),
            ("GET", "/api/v1/nodes/{name}", self.get_node),
            ("GET", "/api/v1/nodes/{name}/status", self.get_node),
            ("DELETE", "/api/v1/nodes/{name}", self.delete_node),
            # namespaces
            ("GET", "/api/v1/namespaces", self.list_namespaces),
            ("POST", "/api/v1/namespaces", self.create_namespace),
            ("GET", "/api/v1/watch/namespaces", self.watch_namespaces),
            ("GET", "/api/v1/namespaces/{ns}", self.get_namespace),
            ("GET", "/api/v1/namespaces/{ns}/status", self.get_namespace),
            ("DELETE", "/api/v1/namespaces/{ns}", self.delete_namespace),
            # pods
            ("GET", "/api/v1/pods", self.list_pods),
            ("GET", "/api/v1/watch/pods", self.watch_pods),
            ("GET", "/api/v1/namespaces/{ns}/pods", self.list_pods),
            ("GET", "/api/v1/watch/namespaces/{ns}/pods", self.watch_pods),
            ("POST", "/api/v1/namespaces/{ns}/pods", self.create_pod),
            ("GET", pod, self.get_pod),
            ("GET", pod + "/status", self.get_pod),
            ("DELETE", pod, self.delete_pod),
            ("POST", pod + "/binding", self.bind_pod),
            ("POST", "/api/v1/namespaces/{ns}/bindings", self.bind_pod),
            ("PATCH", pod, self.patch_pod),
            ("PATCH", pod + "/status", self.patch_pod_status),
            ("PUT", pod, self.replace_pod),
            ("PUT", pod + "/status", self.replace_pod_status),
            ("POST", pod + "/eviction", self.evict_pod),
            # events
            ("GET", "/api/v1/events", self.list_events),
            ("GET", "/api/v1/watch/events", self.watch_events),
            ("GET", "/api/v1/namespaces/{ns}/events", self.list_events),
            ("GET", "/api/v1/watch/namespaces/{ns}/events", self.watch_events),
            ("POST", "/api/v1/namespaces/{ns}/events", self.create_event),
            ("GET", "/api/v1/namespaces/{ns}/events/{name}", self.get_event),
            ("DELETE", "/api/v1/namespaces/{ns}/events/{name}", self.delete_event),
        ]
        base = "/apis/" + COORDINATION_V1
        lease = base + "/namespaces/{ns}/leases/{name}"
        routes += [  # leases
            ("GET", "/apis/" + COORDINATION, self.coordination_group),
            ("GET", base, self.coordination_v1),
            ("GET", base + "/leases", self.list_leases),
            ("GET", base + "/watch/leases", self.watch_leases),
            ("GET", base + "/namespaces/{ns}/leases", self.list_leases),
            ("GET", base + "/watch/namespaces/{ns}/leases", self.watch_leases),
            ("POST", base + "/namespaces/{ns}/leases", self.create_lease),
            ("GET", lease, self.get_lease),
            ("PUT", lease, self.replace_lease),
            ("PATCH", lease, self.patch_lease),
            ("DELETE", lease, self.delete_lease),
        ]
        return routes + self.extra_routes

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        try:
            faults = self.faults
            if faults is not None and faults.active and not request.path.startswith("/admin"):
                await faults.before(request)
            return await handler(request)
        except ApiError as exc:
            return json_response(exc.status(), exc.code)
        except web.HTTPNotFound:
            exc404 = route_not_found()
            return json_response(exc404.status(), 404)
        except web.HTTPMethodNotAllowed:
            exc405 = method_not_allowed(request.method)
            return json_response(exc405.status(), 405)
        except web.HTTPException:
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # answer as the API server would, and keep serving
            log.exception("%s %s failed", request.method, request.path)
            err = internal(repr(exc))
            return json_response(err.status(), 500)

    # discovery -----------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def version(self, request: web.Request) -> web.Response:
        return json_response({
            **KUBE_VERSION,
            "emulationMajor": KUBE_VERSION["major"], "emulationMinor": KUBE_VERSION["minor"],
            "minCompatibilityMajor": KUBE_VERSION["major"],
            "minCompatibilityMinor": str(int(KUBE_VERSION["minor"]) - 1),
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc",
            "platform": "linux/amd64",
        })

    async def api_versions(self, request: web.Request) -> web.Response:
        host = request.host or "127.0.0.1"
        return json_response({"kind": "APIVersions", "versions": ["v1"],
                              "serverAddressByClientCIDRs": [
                                  {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})

    async def api_v1(self, request: web.Request) -> web.Response:
        return json_response({"kind": "APIResourceList", "groupVersion": "v1",
                              "resources": _RESOURCE_DOCS})

    async def apis(self, request: web.Request) -> web.Response:
        return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": _GROUPS})

    async def coordination_group(self, request: web.Request) -> web.Response:
        return json_response({"kind": "APIGroup", "apiVersion": "v1", **_GROUPS[0]})

    async def coordination_v1(self, request: web.Request) -> web.Response:
        return json_response({"kind": "APIResourceList", "apiVersion": "v1",
                              "groupVersion": COORDINATION_V1,
                              "resources": _COORDINATION_DOCS})

    async def openapi_v3(self, request: web.Request) -> web.Response:
        """Just enough OpenAPI v3 for kubectl to see that the server validates fields itself
        (it then sends `fieldValidation` instead of validating against a full schema)."""
        return json_response({"paths": {
            "api/v1": {"serverRelativeURL": f"/openapi/v3/api/v1?hash={_OPENAPI_HASH}"},
            f"apis/{DISCOVERY_V1}": {
                "serverRelativeURL": f"/openapi/v3/apis/{DISCOVERY_V1}?hash={_OPENAPI_HASH}"},
            **{f"apis/{gv}": {"serverRelativeURL": f"/openapi/v3/apis/{gv}?hash={_OPENAPI_HASH}"}
               for gv in _OPENAPI_WORKLOADS}}})

    def _openapi_workloads(self, group_version: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            return json_response(_OPENAPI_WORKLOADS[group_version])
        return handle

    async def openapi_v3_core(self, request: web.Request) -> web.Response:
        return json_response(_OPENAPI_CORE)

    async def openapi_v3_discovery(self, request: web.Request) -> web.Response:
        return json_response(_OPENAPI_DISCOVERY)

    # generic list / watch ------------------------------------------------------------------

    def _selection(self, request: web.Request, resource: Resource) -> Predicate | None:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), resource.plural)
        return combine(labels, fields)

    async def _list_or_watch(self, request: web.Request, resource: Resource,
                             namespace: str | None) -> web.StreamResponse:
        pred = self._selection(request, resource)
        if _flag(request, "watch"):
            return await self._watch(request, resource, namespace, pred)
        _rv_param(request.query.get("resourceVersion"))  # validated; lists are always current
        limit = _int_param(request, "limit")
        token = request.query.get("continue")
        items = resource.select(namespace, pred)
        rv = self.store.rv
        start_after: tuple[str, str] | None = None
        if token:
            rv, start_after = _decode_continue(token)
            items = [s for s in items if _key(s) > start_after]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            meta["continue"] = _encode_continue(rv, _key(items[-1]))
            meta["remainingItemCount"] = remaining
        if wants_table(request.headers.get("Accept", ""), resource.plural):
            return raw_response(table(resource.plural, items, meta, _include(request)))
        head = orjson.dumps({"kind": resource.list_kind, "apiVersion": resource.list_api_version,
                             "metadata": meta})
        body = head[:-1] + b',"items":[' + b",".join(s.raw for s in items) + b"]}"
        return raw_response(body)

    async def _watch(self, request: web.Request, resource: Resource, namespace: str | None,
                     pred: Any) -> web.StreamResponse:
        since = _rv_param(request.query.get("resourceVersion"))
        send_initial = _flag(request, "sendInitialEvents")
        if send_initial:
            since = None
        bookmarks = _flag(request, "allowWatchBookmarks")
        timeout = _int_param(request, "timeoutSeconds")
        if timeout is None or timeout <= 0:
            timeout = int(self.min_request_timeout * (1 + random.random()))
        resp = web.StreamResponse(status=200, headers={"Content-Type": JSON,
                                                       "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        try:
            transform = None
            if wants_table(request.headers.get("Accept", ""), resource.plural):
                transform = event_transform(resource.plural, _include(request))
            if self.faults is not None and self.faults.take_expired_watch():
                raise gone("too old resource version (injected fault)")
            watcher = resource.watch(namespace, pred, since, self.watch_queue, transform)
        except ApiError as exc:
            if exc.code != 410:
                raise
            await resp.prepare(request)
            await resp.write(b'{"type":"ERROR","object":' + orjson.dumps(exc.status()) + b"}\n")
            await resp.write_eof()
            return resp
        if send_initial and bookmarks:
            watcher.buf.append(_bookmark(resource, self.store.rv, initial_end=True))
            watcher.wake.set()
        try:
            await resp.prepare(request)
            await self._stream(resp, resource, watcher, timeout, bookmarks)
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            resource.unwatch(watcher)
        return resp

    async def _stream(self, resp: web.StreamResponse, resource: Resource, watcher: Any,
                      timeout: float, bookmarks: bool) -> None:
        """Write the watcher's events as they come, with bookmarks when asked, until the
        watch's time is up or the watcher is closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + self.bookmark_interval
        while True:
            if watcher.buf:
                await resp.write(watcher.take())
                continue
            if watcher.closed:
                return
            now = loop.time()
            if now >= deadline:
                return
            if bookmarks and now >= next_bookmark:
                await resp.write(_bookmark(resource, self.store.rv))
                next_bookmark = now + self.bookmark_interval
                continue
            wait = deadline - now
            if bookmarks:
                wait = min(wait, next_bookmark - now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await watcher.wake.wait()

    # nodes ---------------------------------------------------------------------------------

    async def list_nodes(self, request: web.Request) -> web.StreamResponse:
        return await self._list_or_watch(request, self.nodes, None)

    async def watch_nodes(self, request: web.Request) -> web.StreamResponse:
        return await self._watch(request, self.nodes, None, self._selection(request, self.nodes))

    def _one(self, request: web.Request, resource: Resource, stored: Stored) -> web.Response:
        if wants_table(request.headers.get("Accept", ""), resource.plural):
            meta = {"resourceVersion": stored.obj["metadata"].get("resourceVersion", "")}
            return raw_response(table(resource.plural, [stored], meta, _include(request)))
        return raw_response(stored.raw)

    async def get_node(self, request: web.Request) -> web.Response:
        return self._one(request, self.nodes, self.nodes.require("", request.match_info["name"]))

    async def delete_node(self, request: web.Request) -> web.Response:
        """Delete a node; the pod garbage collector then removes the pods bound to it."""
        name = request.match_info["name"]
        stored = self.nodes.require("", name)
        options = await self._delete_options(request)
        self._check_preconditions(stored, options, "nodes", name)
        final = self.nodes.delete("", name)
        for pod in [p for p in self.pods.select()
                    if p.obj.get("spec", {}).get("nodeName") == name]:
            meta = pod.obj["metadata"]
            with contextlib.suppress(ApiError):
                self.pods.delete(meta["namespace"], meta["name"])
        return raw_response(final.raw)

    # namespaces ----------------------------------------------------------------------------

    async def list_namespaces(self, request: web.Request) -> web.StreamResponse:
        return await self._list_or_watch(request, self.namespaces, None)

    async def watch_namespaces(self, request: web.Request) -> web.StreamResponse:
        return await self._watch(request, self.namespaces, None,
                                 self._selection(request, self.namespaces))

    async def get_namespace(self, request: web.Request) -> web.Response:
        return self._one(request, self.namespaces,
                         self.namespaces.require("", request.match_info["ns"]))

    async def create_namespace(self, request: web.Request) -> web.Response:
        obj = admit_namespace(await _body(request), now_rfc3339())
        return raw_response(self.namespaces.create(obj).raw, 201)

    async def delete_namespace(self, request: web.Request) -> web.Response:
        name = request.match_info["ns"]
        stored = self.namespaces.require("", name)
        if name in PROTECTED_NAMESPACES:
            raise forbidden("namespaces", name, "this namespace may not be deleted")
        if stored.obj["metadata"].get("deletionTimestamp"):
            return raw_response(stored.raw)
        options = await self._delete_options(request)
        self._check_preconditions(stored, options, "namespaces", name)
        when = now_rfc3339()

        def terminate(obj: dict[str, Any]) -> None:
            obj["metadata"]["deletionTimestamp"] = when
            obj["status"] = {"phase": "Terminating"}

        stored = self.namespaces.mutate("", name, terminate)
        self._terminating.add(name)
        for pod in self.pods.select(name):
            with contextlib.suppress(ApiError):
                self._delete_pod(pod, None)
        self._finish_namespace(name)
        return raw_response(stored.raw)

    def _finish_namespace(self, name: str) -> None:
        if name in self._terminating and self.pods.count(name) == 0:
            self._terminating.discard(name)
            for resource in self.store.resources.values():  # what else lives in it goes too
                if not resource.namespaced or resource is self.pods:
                    continue
                for stored in resource.select(name):
                    with contextlib.suppress(ApiError):
                        resource.delete(name, stored.obj["metadata"]["name"])
            if self.namespaces.get("", name) is not None:
                self.namespaces.delete("", name)

    def _on_event(self, resource: Resource, event: Event) -> None:
        if resource is self.pods and event.type == DELETED and self._terminating:
            namespace = event.stored.obj["metadata"].get("namespace", "")
            if namespace in self._terminating:
                self._finish_namespace(namespace)

    def _namespace_open(self, namespace: str, resource: str, name: str) -> None:
        stored = self.namespaces.get("", namespace)
        if stored is None:
            raise not_found("namespaces", namespace)
        if stored.obj["metadata"].get("deletionTimestamp"):
            raise forbidden(resource, name, f"unable to create new content in namespace "
                            f"{namespace} because it is being terminated")

    # pods ----------------------------------------------------------------------------------

    async def list_pods(self, request: web.Request) -> web.StreamResponse:
        return await self._list_or_watch(request, self.pods, request.match_info.get("ns"))

    async def watch_pods(self, request: web.Request) -> web.StreamResponse:
        return await self._watch(request, self.pods, request.match_info.get("ns"),
                                 self._selection(request, self.pods))

    async def get_pod(self, request: web.Request) -> web.Response:
        info = request.match_info
        return self._one(request, self.pods, self.pods.require(info["ns"], info["name"]))

    async def create_pod(self, request: web.Request) -> web.Response:
        namespace = request.match_info["ns"]
        obj = admit_pod(await _body(request), namespace, now_rfc3339())
        causes = pod_spec_causes(obj["spec"])
        if causes:
            raise invalid("Pod", obj["metadata"]["name"], causes)
        self._namespace_open(namespace, "pods", obj["metadata"]["name"])
        return raw_response(self.pods.create(obj).raw, 201)

    async def delete_pod(self, request: web.Request) -> web.Response:
        info = request.match_info
        stored = self.pods.require(info["ns"], info["name"])
        options = await self._delete_options(request)
        self._check_preconditions(stored, options, "pods", info["name"])
        return raw_response(self._delete_pod(stored, options.get("gracePeriodSeconds")).raw)

    def _delete_pod(self, stored: Stored, grace: int | None) -> Stored:
        """Graceful pod deletion as the API server does it; returns the resulting object."""
        pod = self.store.copy(stored)
        meta, spec = pod["metadata"], pod.get("spec", {})
        namespace, name = meta.get("namespace", ""), meta["name"]
        if grace is None:
            grace = meta.get("deletionGracePeriodSeconds",
                             spec.get("terminationGracePeriodSeconds", 30))
        if grace < 0:
            grace = 1
        if not spec.get("nodeName") or pod.get("status", {}).get("phase") in ("Succeeded",
                                                                             "Failed"):
            grace = 0  # nothing runs it: gone at once
        current = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and current is not None and grace >= current:
            return stored  # already being deleted at least as fast
        now = time.time()
        meta["deletionTimestamp"] = now_rfc3339(now + grace)
        meta["deletionGracePeriodSeconds"] = grace
        if grace == 0:
            return self.pods.delete(namespace, name, pod)
        meta["generation"] = int(meta.get("generation", 1)) + 1
        return self.pods.update(pod)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        body = await _body(request)
        if body is not None:
            if not isinstance(body, dict):
                raise bad_request("the body of a delete request must be DeleteOptions")
            options.update(body)
        grace = _int_param(request, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        value = options.get("gracePeriodSeconds")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad_request(f"gracePeriodSeconds must be an integer, got {value!r}")
        return options

    @staticmethod
    def _check_preconditions(stored: Stored, options: dict[str, Any], resource: str,
                             name: str) -> None:
        pre = options.get("preconditions") or {}
        meta = stored.obj["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict(resource, name, f"Precondition failed: UID in precondition: "
                           f"{pre['uid']}, UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise conflict(resource, name, "Precondition failed: ResourceVersion in "
                           f"precondition: {pre['resourceVersion']}, ResourceVersion in object "
                           f"meta: {meta.get('resourceVersion')}")

    async def bind_pod(self, request: web.Request) -> web.Response:
        namespace = request.match_info["ns"]
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a Binding object")
        meta = body.get("metadata") or {}
        name = request.match_info.get("name") or meta.get("name")
        if not name:
            raise invalid("Binding", "", [("metadata.name", "FieldValueRequired",
                                           "Required value")])
        target = body.get("target") or {}
        if target.get("kind") not in (None, "", "Node"):
            raise invalid("Binding", name, [("target.kind", "FieldValueNotSupported",
                                             f'Unsupported value: "{target.get("kind")}": '
                                             'supported values: "Node"')])
        node_name = target.get("name")
        if not node_name:
            raise invalid("Binding", name, [("target.name", "FieldValueRequired",
                                             "Required value")])
        stored = self.pods.require(namespace, name)
        pod_meta = stored.obj["metadata"]
        if meta.get("uid") and meta["uid"] != pod_meta.get("uid"):
            raise conflict("pods/binding", name, f"Precondition failed: UID in precondition: "
                           f"{meta['uid']}, UID in object meta: {pod_meta.get('uid')}")
        if pod_meta.get("deletionTimestamp"):
            raise conflict("pods/binding", name,
                           f"pod {name} is being deleted, cannot be assigned to a host")
        bound = stored.obj.get("spec", {}).get("nodeName")
        if bound:
            raise conflict("pods/binding", name,
                           f'pod {name} is already assigned to node "{bound}"')
        if self.nodes.get("", node_name) is None:
            raise not_found("nodes", node_name)
        self.bind(namespace, name, node_name, meta.get("annotations") or {})
        return json_response(success_status(201), 201)

    def bind(self, namespace: str, name: str, node_name: str,
             annotations: dict[str, Any] | None = None) -> None:
        """Bind a pod to a node (what `pods/binding` does once the request is checked)."""
        when = now_rfc3339()

        def bind(pod: dict[str, Any]) -> None:
            pod["spec"]["nodeName"] = node_name
            if annotations:
                pod["metadata"].setdefault("annotations", {}).update(annotations)
            status = pod.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or ()
                          if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True",
                               "lastProbeTime": None, "lastTransitionTime": when})
            status["conditions"] = conditions

        bound_pod = self.pods.mutate(namespace, name, bind)
        self.event_log.record(bound_pod.obj, "Normal", "Scheduled",
                              f"Successfully assigned {namespace}/{name} to {node_name}",
                              component="default-scheduler")

    # patch / update ------------------------------------------------------------------------

    async def patch_pod(self, request: web.Request) -> web.Response:
        return await self._change_pod(request, status=False, patch=True)

    async def patch_pod_status(self, request: web.Request) -> web.Response:
        return await self._change_pod(request, status=True, patch=True)

    async def replace_pod(self, request: web.Request) -> web.Response:
        return await self._change_pod(request, status=False, patch=False)

    async def replace_pod_status(self, request: web.Request) -> web.Response:
        return await self._change_pod(request, status=True, patch=False)

    async def _changed(self, request: web.Request, resource: Resource, stored: Stored,
                       patch: bool) -> dict[str, Any]:
        """The object a PATCH or PUT asks for, with identity and resourceVersion checked."""
        body = await _body(request)
        old = stored.obj
        name = old["metadata"]["name"]
        if patch:
            if body is None:
                raise bad_request("the body of a patch request must not be empty")
            new = apply_patch(request.headers.get("Content-Type", ""), old, body)
        else:
            if not isinstance(body, dict):
                raise bad_request(f"the body of the request must be a {resource.kind} object")
            new = body
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if meta.get("name", name) != name:
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the "
                              f"name on the URL ({name})")
        namespace = old["metadata"].get("namespace")
        if namespace and meta.get("namespace", namespace) != namespace:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != old["metadata"].get("resourceVersion"):
            raise conflict(resource.plural, name, "the object has been modified; please apply "
                           "your changes to the latest version and try again", resource.group)
        uid = meta.get("uid")
        if uid not in (None, "") and uid != old["metadata"].get("uid"):
            raise conflict(resource.plural, name, f"Precondition failed: UID in precondition: "
                           f"{uid}, UID in object meta: {old['metadata'].get('uid')}",
                           resource.group)
        for key in ("uid", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "namespace", "name", "generation"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        causes = _check_meta_maps(meta)
        if causes:
            raise invalid(resource.kind, name, causes, resource.group)
        new["kind"], new["apiVersion"] = old.get("kind"), old.get("apiVersion")
        return new

    async def _change_pod(self, request: web.Request, status: bool, patch: bool
                          ) -> web.Response:
        info = request.match_info
        stored = self.pods.require(info["ns"], info["name"])
        new = await self._changed(request, self.pods, stored, patch)
        old = stored.obj
        if status:  # the status subresource changes status only
            result = self.store.copy(stored)
            result["status"] = new.get("status") or {}
            result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return raw_response(self.pods.update(result).raw)
        new["status"] = old.get("status") or {}
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if new_spec != old_spec:
            mutable = dict(new_spec)
            for key in ("activeDeadlineSeconds", "tolerations"):
                mutable.pop(key, None)
            frozen = {k: v for k, v in old_spec.items()
                      if k not in ("activeDeadlineSeconds", "tolerations")}
            images_only = [dict(c, image=None) for c in mutable.get("containers") or ()] == [
                dict(c, image=None) for c in frozen.get("containers") or ()]
            mutable.pop("containers", None)
            frozen.pop("containers", None)
            if mutable != frozen or not images_only:
                raise invalid("Pod", old["metadata"]["name"], [(
                    "spec", "FieldValueForbidden", "Forbidden: pod updates may not change "
                    "fields other than `spec.containers[*].image`, "
                    "`spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to "
                    "existing tolerations)")])
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        causes = check_sim_annotations(new["metadata"].get("annotations") or {})
        if causes:
            raise invalid("Pod", old["metadata"]["name"], causes)
        return raw_response(self.pods.update(new).raw)

    # eviction ------------------------------------------------------------------------------

    async def evict_pod(self, request: web.Request) -> web.Response:
        info = request.match_info
        body = await _body(request)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an Eviction object")
        if body.get("kind") not in (None, "", "Eviction"):
            raise bad_request(f"the object provided is unrecognized (must be of type Eviction):"
                              f" kind {body.get('kind')!r}")
        name = info["name"]
        given = (body.get("metadata") or {}).get("name")
        if given and given != name:
            raise bad_request(f"name in URL does not match name in Eviction object: {given}")
        stored = self.pods.require(info["ns"], name)
        options = body.get("deleteOptions") or {}
        if not isinstance(options, dict):
            raise bad_request("deleteOptions must be an object")
        self._check_preconditions(stored, options, "pods", name)
        grace = options.get("gracePeriodSeconds")
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int)):
            raise bad_request(f"gracePeriodSeconds must be an integer, got {grace!r}")
        if stored.obj["metadata"].get("deletionTimestamp"):
            return json_response(success_status(201), 201)
        if stored.obj.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            stored = self.pods.mutate(info["ns"], name, lambda pod: set_condition(
                pod, "DisruptionTarget", "True", "EvictionByEvictionAPI",
                "Eviction API: evicting"))
        self._delete_pod(stored, grace)
        return json_response(success_status(201), 201)

    # events --------------------------------------------------------------------------------

    async def list_events(self, request: web.Request) -> web.StreamResponse:
        return await self._list_or_watch(request, self.events, request.match_info.get("ns"))

    async def watch_events(self, request: web.Request) -> web.StreamResponse:
        return await self._watch(request, self.events, request.match_info.get("ns"),
                                 self._selection(request, self.events))

    async def create_event(self, request: web.Request) -> web.Response:
        namespace = request.match_info["ns"]
        obj = admit_object(await _body(request), "Event", "v1", namespace, now_rfc3339())
        involved = obj.get("involvedObject")
        if not isinstance(involved, dict):
            raise invalid("Event", obj["metadata"]["name"], [(
                "involvedObject", "FieldValueRequired", "Required value")])
        if involved.get("namespace") not in (None, "", namespace):
            raise invalid("Event", obj["metadata"]["name"], [(
                "involvedObject.namespace", "FieldValueInvalid",
                f'Invalid value: "{involved.get("namespace")}": does not match event.namespace')])
        self._namespace_open(namespace, "events", obj["metadata"]["name"])
        return raw_response(self.event_log.create(obj).raw, 201)

    async def get_event(self, request: web.Request) -> web.Response:
        info = request.match_info
        return raw_response(self.events.require(info["ns"], info["name"]).raw)

    async def delete_event(self, request: web.Request) -> web.Response:
        info = request.match_info
        stored = self.events.require(info["ns"], info["name"])
        options = await self._delete_options(request)
        self._check_preconditions(stored, options, "events", info["name"])
        self.events.delete(info["ns"], info["name"])
        return json_response(success_status(200, {"name": info["name"], "kind": "events",
                                                  "uid": stored.obj["metadata"].get("uid")}))

    # leases --------------------------------------------------------------------------------

    async def list_leases(self, request: web.Request) -> web.StreamResponse:
        return await self._list_or_watch(request, self.leases, request.match_info.get("ns"))

    async def watch_leases(self, request: web.Request) -> web.StreamResponse:
        return await self._watch(request, self.leases, request.match_info.get("ns"),
                                 self._selection(request, self.leases))

    async def create_lease(self, request: web.Request) -> web.Response:
        namespace = request.match_info["ns"]
        obj = admit_object(await _body(request), "Lease", COORDINATION_V1, namespace,
                           now_rfc3339())
        obj.setdefault("spec", {})
        self._namespace_open(namespace, "leases", obj["metadata"]["name"])
        return raw_response(self.leases.create(obj).raw, 201)

    async def get_lease(self, request: web.Request) -> web.Response:
        info = request.match_info
        return raw_response(self.leases.require(info["ns"], info["name"]).raw)

    async def replace_lease(self, request: web.Request) -> web.Response:
        return await self._change_lease(request, patch=False)

    async def patch_lease(self, request: web.Request) -> web.Response:
        return await self._change_lease(request, patch=True)

    async def _change_lease(self, request: web.Request, patch: bool) -> web.Response:
        info = request.match_info
        stored = self.leases.require(info["ns"], info["name"])
        new = await self._changed(request, self.leases, stored, patch)
        if not isinstance(new.get("spec") or {}, dict):
            raise invalid("Lease", info["name"], [("spec", "FieldValueInvalid",
                                                   "must be an object")], COORDINATION)
        new["spec"] = new.get("spec") or {}
        return raw_response(self.leases.update(new).raw)

    async def delete_lease(self, request: web.Request) -> web.Response:
        info = request.match_info
        stored = self.leases.require(info["ns"], info["name"])
        options = await self._delete_options(request)
        self._check_preconditions(stored, options, "leases", info["name"])
        self.leases.delete(info["ns"], info["name"])
        return json_response(success_status(200, {"name": info["name"], "group": COORDINATION,
                                                  "kind": "leases",
                                                  "uid": stored.obj["metadata"].get("uid")}))


def set_condition(pod: dict[str, Any], type_: str, status: str, reason: str,
                  message: str) -> None:
    """Set one pod condition (lastTransitionTime moves only when the status changes)."""
    pod_status = pod.setdefault("status", {})
    conditions = list(pod_status.get("conditions") or ())
    when = now_rfc3339()
    for i, cond in enumerate(conditions):
        if cond.get("type") == type_:
            if cond.get("status") == status:
                when = cond.get("lastTransitionTime") or when
            conditions[i] = {"type": type_, "status": status, "lastProbeTime": None,
                             "lastTransitionTime": when, "reason": reason, "message": message}
            break
    else:
        conditions.append({"type": type_, "status": status, "lastProbeTime": None,
                           "lastTransitionTime": when, "reason": reason, "message": message})
    pod_status["conditions"] = conditions


def _include(request: web.Request) -> str:
    return request.query.get("includeObject") or "Metadata"


def _bookmark(resource: Resource, rv: int, initial_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return b'{"type":"BOOKMARK","object":' + orjson.dumps(
        {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": meta}) + b"}\n"


def _key(stored: Stored) -> tuple[str, str]:
    meta = stored.obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def _encode_continue(rv: int, key: tuple[str, str]) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(key)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        start = data["start"]
        return int(data["rv"]), (str(start[0]), str(start[1]))
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError,
            orjson.JSONDecodeError):
        raise bad_request("continue key is not valid") from None
