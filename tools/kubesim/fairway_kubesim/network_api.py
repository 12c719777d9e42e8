"""The REST handlers of Services, Endpoints, EndpointSlices (discovery.k8s.io/v1) and
ConfigMaps: create, get, list, watch, replace, patch, delete and deletecollection, on the
generic list, watch and patch code of `api.Api`; admission and the endpoints controller are in
`services`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .api import Api, _body, json_response, raw_response
from .errors import already_exists, bad_request, invalid, success_status
from .group_api import ResourceGroupApi
from .objects import admit_object, now_rfc3339
from .services import (
    DISCOVERY,
    DISCOVERY_DOCS,
    DISCOVERY_GROUP,
    DISCOVERY_V1,
    DNS_1035,
    Cause,
    allocate_cluster_ip,
    config_map_causes,
    default_service,
    endpoint_slice_causes,
    endpoints_causes,
    service_causes,
)
from .store import Resource


class NetworkApi(ResourceGroupApi):
    """The REST handlers of services, endpoints, endpointslices and configmaps."""

    def __init__(self, api: Api) -> None:
        super().__init__(api)
        store = api.store
        self.services = store["services"]
        self.endpoints = store["endpoints"]
        self.configmaps = store["configmaps"]
        self.slices = store["endpointslices"]

    def routes(self) -> list[tuple[str, str, Any]]:
        routes: list[tuple[str, str, Any]] = []
        for prefix, resource in (("/api/v1", self.services), ("/api/v1", self.endpoints),
                                 ("/api/v1", self.configmaps),
                                 ("/apis/" + DISCOVERY_V1, self.slices)):
            plural = resource.plural
            one = f"{prefix}/namespaces/{{ns}}/{plural}/{{name}}"
            many = f"{prefix}/namespaces/{{ns}}/{plural}"
            routes += [
                ("GET", f"{prefix}/{plural}", self._handler(self._list, resource)),
                ("GET", f"{prefix}/watch/{plural}", self._handler(self._watch, resource)),
                ("GET", many, self._handler(self._list, resource)),
                ("GET", f"{prefix}/watch/namespaces/{{ns}}/{plural}",
                 self._handler(self._watch, resource)),
                ("POST", many, self._handler(self._create, resource)),
                ("DELETE", many, self._handler(self._delete_collection, resource)),
                ("GET", one, self._handler(self._get, resource)),
                ("PUT", one, self._handler(self._replace, resource)),
                ("PATCH", one, self._handler(self._patch, resource)),
                ("DELETE", one, self._handler(self._delete, resource)),
            ]
            if resource is self.services:
                routes += [("GET", one + "/status", self._handler(self._get, resource))]
        for slash in ("", "/"):  # the generated client asks for /apis/discovery.k8s.io/
            routes += [("GET", "/apis/" + DISCOVERY + slash, self.discovery_group),
                       ("GET", "/apis/" + DISCOVERY_V1 + slash, self.discovery_v1)]
        return routes

    async def discovery_group(self, request: web.Request) -> web.Response:
        return json_response({"kind": "APIGroup", "apiVersion": "v1", **DISCOVERY_GROUP})

    async def discovery_v1(self, request: web.Request) -> web.Response:
        return json_response({"kind": "APIResourceList", "apiVersion": "v1",
                              "groupVersion": DISCOVERY_V1, "resources": DISCOVERY_DOCS})

    async def _create(self, request: web.Request, resource: Resource) -> web.Response:
        namespace = request.match_info["ns"]
        obj = admit_object(await _body(request), resource.kind, resource.api_version, namespace,
                           now_rfc3339())
        name = obj["metadata"]["name"]
        self._check(resource, obj, None)
        self.api._namespace_open(namespace, resource.plural, name)
        if resource is self.services:
            default_service(obj)
            spec = obj["spec"]
            if spec.get("clusterIP") != "None":
                spec["clusterIP"] = allocate_cluster_ip(self.services, spec.get("clusterIP"),
                                                        name)
            spec["clusterIPs"] = [spec["clusterIP"]]
        if resource is self.configmaps or resource is self.endpoints or \
                resource is self.slices:
            obj.pop("status", None)
        if resource.get(namespace, name) is not None:  # before a ClusterIP is spent on it
            raise already_exists(resource.plural, name, resource.group)
        return raw_response(resource.create(obj).raw, 201)

    def _check(self, resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None
               ) -> None:
        name = obj["metadata"]["name"]
        causes: list[Cause] = []
        if resource is self.services:
            if old is None and (len(name) > 63 or not DNS_1035.match(name)):
                causes.append(("metadata.name", "FieldValueInvalid", f'Invalid value: '
                               f'"{name}": a DNS-1035 label must consist of lower case '
                               "alphanumeric characters or '-', start with an alphabetic "
                               "character, and end with an alphanumeric character (e.g. "
                               "'my-name',  or 'abc-123', regex used for validation is "
                               "'[a-z]([-a-z0-9]*[a-z0-9])?')"))
            causes += service_causes(obj)
        elif resource is self.configmaps:
            causes += config_map_causes(obj)
            if old is not None and old.get("immutable") is True:
                for part in ("data", "binaryData"):
                    if (obj.get(part) or {}) != (old.get(part) or {}):
                        causes.append((part, "FieldValueForbidden", "Forbidden: field is "
                                       "immutable when `immutable` is set"))
                if obj.get("immutable") is not True:
                    causes.append(("immutable", "FieldValueForbidden", "Forbidden: field is "
                                   "immutable when `immutable` is set"))
        elif resource is self.endpoints:
            causes += endpoints_causes(obj)
        else:
            causes += endpoint_slice_causes(obj)
        if causes:
            raise invalid(resource.kind, name, causes, resource.group)

    async def _change(self, request: web.Request, resource: Resource, patch: bool
                      ) -> web.Response:
        info = request.match_info
        stored = resource.require(info["ns"], info["name"])
        new = await self.api._changed(request, resource, stored, patch)
        old = stored.obj
        if resource is self.services:
            spec, old_spec = new.get("spec"), old.get("spec") or {}
            if isinstance(spec, dict):
                if spec.get("clusterIP") in (None, ""):  # left out of a PUT: kept
                    spec["clusterIP"] = old_spec.get("clusterIP")
                if spec.get("clusterIP") != old_spec.get("clusterIP"):
                    raise invalid("Service", info["name"], [(
                        "spec.clusterIPs[0]", "FieldValueInvalid",
                        f'Invalid value: "{spec.get("clusterIP")}": may not change once set')])
                spec["clusterIPs"] = [spec["clusterIP"]]
            self._check(resource, new, old)
            default_service(new)
            new["status"] = old.get("status") or {"loadBalancer": {}}
        else:
            self._check(resource, new, old)
        return raw_response(resource.update(new).raw)

    async def _delete(self, request: web.Request, resource: Resource) -> web.Response:
        info = request.match_info
        stored = resource.require(info["ns"], info["name"])
        options = await self.api._delete_options(request)
        self.api._check_preconditions(stored, options, resource.plural, info["name"])
        final = resource.delete(info["ns"], info["name"])
        if resource is self.services:  # the Service registry answers with the object
            return raw_response(final.raw)
        details = {"name": info["name"], "kind": resource.plural,
                   "uid": stored.obj["metadata"].get("uid")}
        if resource.group:
            details["group"] = resource.group
        return json_response(success_status(200, details))

    async def _delete_collection(self, request: web.Request, resource: Resource
                                 ) -> web.Response:
        namespace = request.match_info["ns"]
        if namespace == "" or resource.plural not in self.api.store.resources:
            raise bad_request("a namespace is required")
        pred = self.api._selection(request, resource)
        gone = [resource.delete(namespace, s.obj["metadata"]["name"])
                for s in resource.select(namespace, pred)]
        head = (f'{{"kind":"{resource.list_kind}","apiVersion":"{resource.list_api_version}",'
                f'"metadata":{{"resourceVersion":"{self.api.store.rv}"}},"items":[').encode()
        return raw_response(head + b",".join(s.raw for s in gone) + b"]}")
