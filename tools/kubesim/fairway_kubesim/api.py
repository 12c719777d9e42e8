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
    internal,
    invalid,
    method_not_allowed,
    not_found,
    route_not_found,
    success_status,
)
from .objects import KUBE_VERSION, admit_namespace, admit_pod, now_rfc3339
from .selectors import Predicate, combine, parse_field_selector, parse_label_selector
from .store import DEFAULT_WATCH_QUEUE, DELETED, Event, Resource, Store, Stored
from .tables import event_transform, table, wants_table

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
     "verbs": ["get", "list", "watch"], "shortNames": ["no"]},
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
     "verbs": ["create", "delete", "get", "list", "watch"], "shortNames": ["po"],
     "categories": ["all"]},
    {"name": "pods/binding", "singularName": "", "namespaced": True, "kind": "Binding",
     "verbs": ["create"]},
    {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod",
     "verbs": ["get"]},
]


def _openapi_core() -> dict[str, Any]:
    param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string",
                                                                   "uniqueItems": True}}
    paths: dict[str, Any] = {}
    for path, kind in (("/api/v1/namespaces/{namespace}/pods/{name}", "Pod"),
                       ("/api/v1/namespaces/{name}", "Namespace"),
                       ("/api/v1/namespaces/{namespace}/bindings", "Binding")):
        gvk = {"group": "", "version": "v1", "kind": kind}
        op = {"x-kubernetes-group-version-kind": gvk, "parameters": [param],
              "responses": {"200": {"description": "OK"}}}
        paths[path] = {"patch": op, "post": op}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (kubesim)",
                                         "version": KUBE_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


_OPENAPI_CORE = _openapi_core()
_OPENAPI_HASH = "kubesim-1"


class Api:
    """Request handlers over a `Store`; the kubelet reacts to what they write."""

    def __init__(self, store: Store, bookmark_interval: float = 10.0,
                 min_request_timeout: float = 1800.0,
                 watch_queue: int = DEFAULT_WATCH_QUEUE) -> None:
        self.store = store
        self.pods = store["pods"]
        self.nodes = store["nodes"]
        self.namespaces = store["namespaces"]
        self.bookmark_interval = bookmark_interval
        self.min_request_timeout = min_request_timeout
        self.watch_queue = watch_queue
        self.requests = 0
        self._terminating: set[str] = set()
        store.listen(self._on_event)

    # application ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        r = app.router
        for path in ("/healthz", "/livez", "/readyz"):
            r.add_get(path, self.health)
        for slash in ("", "/"):  # the generated client asks for /version/, /apis/ ...
            r.add_get("/version" + slash, self.version)
            r.add_get("/api" + slash, self.api_versions)
            r.add_get("/api/v1" + slash, self.api_v1)
            r.add_get("/apis" + slash, self.apis)
        r.add_get("/openapi/v3", self.openapi_v3)
        r.add_get("/openapi/v3/api/v1", self.openapi_v3_core)
        r.add_get("/api/v1/nodes", self.list_nodes)
        r.add_get("/api/v1/watch/nodes", self.watch_nodes)
        r.add_get("/api/v1/nodes/{name}", self.get_node)
        r.add_get("/api/v1/nodes/{name}/status", self.get_node)
        r.add_get("/api/v1/namespaces", self.list_namespaces)
        r.add_post("/api/v1/namespaces", self.create_namespace)
        r.add_get("/api/v1/watch/namespaces", self.watch_namespaces)
        r.add_get("/api/v1/namespaces/{ns}", self.get_namespace)
        r.add_get("/api/v1/namespaces/{ns}/status", self.get_namespace)
        r.add_delete("/api/v1/namespaces/{ns}", self.delete_namespace)
        r.add_get("/api/v1/pods", self.list_pods)
        r.add_get("/api/v1/watch/pods", self.watch_pods)
        r.add_get("/api/v1/namespaces/{ns}/pods", self.list_pods)
        r.add_get("/api/v1/watch/namespaces/{ns}/pods", self.watch_pods)
        r.add_post("/api/v1/namespaces/{ns}/pods", self.create_pod)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}", self.get_pod)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}/status", self.get_pod)
        r.add_delete("/api/v1/namespaces/{ns}/pods/{name}", self.delete_pod)
        r.add_post("/api/v1/namespaces/{ns}/pods/{name}/binding", self.bind_pod)
        r.add_post("/api/v1/namespaces/{ns}/bindings", self.bind_pod)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        try:
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
        return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def openapi_v3(self, request: web.Request) -> web.Response:
        """Just enough OpenAPI v3 for kubectl to see that the server validates fields itself
        (it then sends `fieldValidation` instead of validating against a full schema)."""
        return json_response({"paths": {"api/v1": {
            "serverRelativeURL": f"/openapi/v3/api/v1?hash={_OPENAPI_HASH}"}}})

    async def openapi_v3_core(self, request: web.Request) -> web.Response:
        return json_response(_OPENAPI_CORE)

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
        head = orjson.dumps({"kind": resource.list_kind, "apiVersion": resource.api_version,
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
        loop = asyncio.get_running_loop()
        try:
            await resp.prepare(request)
            deadline = loop.time() + timeout
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                if watcher.buf:
                    await resp.write(watcher.take())
                    continue
                if watcher.closed:
                    break
                now = loop.time()
                if now >= deadline:
                    break
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
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            resource.unwatch(watcher)
        return resp

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
        when = now_rfc3339()
        annotations = meta.get("annotations") or {}

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

        self.pods.mutate(namespace, name, bind)
        return json_response(success_status(201), 201)


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
