"""The REST handlers of the workload kinds (`workloads`): discovery of `batch/v1`, `apps/v1`
and `kubeflow.org/v1`; create, get, list, watch, replace, patch, delete and deletecollection;
the `status` subresource (get, replace, patch) and the `scale` subresource (an
`autoscaling/v1` `Scale`) of Deployments, ReplicaSets and StatefulSets. Deletion honours
`propagationPolicy` through the controllers' garbage collector; everything else runs on the
generic list, watch and patch code of `api.Api`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .api import Api, _body, json_response, raw_response
from .controllers import Controllers
from .errors import bad_request, conflict, invalid, success_status
from .group_api import ResourceGroupApi
from .objects import admit_object, now_rfc3339
from .patch import apply_patch
from .store import Resource, Stored
from .workloads import (
    AUTOSCALING_V1,
    GROUP_DOCS,
    GROUPS,
    KINDS,
    admit_workload,
    update_causes,
)

PROPAGATION = ("Orphan", "Background", "Foreground")


def _label_selector_text(selector: dict[str, Any] | None) -> str:
    """A LabelSelector as the `status.selector` string of a Scale."""
    parts = [f"{k}={v}" for k, v in sorted(((selector or {}).get("matchLabels")
                                            or {}).items())]
    for expr in (selector or {}).get("matchExpressions") or ():
        op, key = expr.get("operator"), expr.get("key")
        if op in ("In", "NotIn"):
            values = ",".join(expr.get("values") or ())
            parts.append(f"{key} {op.lower()} ({values})")
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append(f"!{key}")
    return ",".join(parts)


class WorkloadsApi(ResourceGroupApi):
    """The REST handlers of Jobs, Deployments, ReplicaSets, StatefulSets and PyTorchJobs."""

    def __init__(self, api: Api, controllers: Controllers) -> None:
        super().__init__(api)
        self.controllers = controllers
        self.resources = {plural: api.store[plural] for plural in KINDS}

    def routes(self) -> list[tuple[str, str, Any]]:
        routes: list[tuple[str, str, Any]] = []
        for plural, (_kind, _group, api_version, _short, scale) in KINDS.items():
            resource = self.resources[plural]
            prefix = "/apis/" + api_version
            one = f"{prefix}/namespaces/{{ns}}/{plural}/{{name}}"
            many = f"{prefix}/namespaces/{{ns}}/{plural}"
            h = self._handler
            routes += [
                ("GET", f"{prefix}/{plural}", h(self._list, resource)),
                ("GET", f"{prefix}/watch/{plural}", h(self._watch, resource)),
                ("GET", many, h(self._list, resource)),
                ("GET", f"{prefix}/watch/namespaces/{{ns}}/{plural}", h(self._watch, resource)),
                ("POST", many, h(self._create, resource)),
                ("DELETE", many, h(self._delete_collection, resource)),
                ("GET", one, h(self._get, resource)),
                ("PUT", one, h(self._replace, resource)),
                ("PATCH", one, h(self._patch, resource)),
                ("DELETE", one, h(self._delete, resource)),
                ("GET", one + "/status", h(self._get, resource)),
                ("PUT", one + "/status", h(self._replace_status, resource)),
                ("PATCH", one + "/status", h(self._patch_status, resource)),
            ]
            if scale:
                routes += [("GET", one + "/scale", h(self._get_scale, resource)),
                           ("PUT", one + "/scale", h(self._replace_scale, resource)),
                           ("PATCH", one + "/scale", h(self._patch_scale, resource))]
        for group in GROUPS:
            gv = group["preferredVersion"]["groupVersion"]
            for slash in ("", "/"):
                routes += [("GET", f"/apis/{group['name']}{slash}", self._group(group)),
                           ("GET", f"/apis/{gv}{slash}", self._resources(gv))]
        return routes

    @staticmethod
    def _group(group: dict[str, Any]) -> Any:
        async def handle(request: web.Request) -> web.Response:
            return json_response({"kind": "APIGroup", "apiVersion": "v1", **group})
        return handle

    @staticmethod
    def _resources(group_version: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            return json_response({"kind": "APIResourceList", "apiVersion": "v1",
                                  "groupVersion": group_version,
                                  "resources": GROUP_DOCS[group_version]})
        return handle

    # write (reads: ResourceGroupApi) ------------------------------------------------------

    async def _create(self, request: web.Request, resource: Resource) -> web.Response:
        namespace = request.match_info["ns"]
        obj = admit_object(await _body(request), resource.kind, resource.api_version, namespace,
                           now_rfc3339())
        admit_workload(obj)
        self.api._namespace_open(namespace, resource.plural, obj["metadata"]["name"])
        return raw_response(resource.create(obj).raw, 201)

    async def _change(self, request: web.Request, resource: Resource, patch: bool
                      ) -> web.Response:
        info = request.match_info
        stored = resource.require(info["ns"], info["name"])
        new = await self.api._changed(request, resource, stored, patch)
        old = stored.obj
        causes = update_causes(old, new)
        if causes:
            raise invalid(resource.kind, info["name"], causes, resource.group)
        new["status"] = old.get("status") or {}
        generation = int(old["metadata"].get("generation", 1))
        new["metadata"]["generation"] = generation + (new["spec"] != old.get("spec"))
        return raw_response(resource.update(new).raw)

    async def _replace_status(self, request: web.Request, resource: Resource) -> web.Response:
        return await self._change_status(request, resource, patch=False)

    async def _patch_status(self, request: web.Request, resource: Resource) -> web.Response:
        return await self._change_status(request, resource, patch=True)

    async def _change_status(self, request: web.Request, resource: Resource, patch: bool
                             ) -> web.Response:
        info = request.match_info
        stored = resource.require(info["ns"], info["name"])
        new = await self.api._changed(request, resource, stored, patch)
        status = new.get("status") or {}
        if not isinstance(status, dict):
            raise invalid(resource.kind, info["name"], [("status", "FieldValueInvalid",
                                                         "must be an object")], resource.group)
        result = self.api.store.copy(stored)
        result["status"] = status
        return raw_response(resource.update(result).raw)

    # scale -------------------------------------------------------------------------------

    @staticmethod
    def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {"kind": "Scale", "apiVersion": AUTOSCALING_V1,
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": obj["spec"].get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": _label_selector_text(obj["spec"].get("selector"))}}

    async def _get_scale(self, request: web.Request, resource: Resource) -> web.Response:
        info = request.match_info
        return json_response(self._scale_of(resource.require(info["ns"], info["name"]).obj))

    async def _replace_scale(self, request: web.Request, resource: Resource) -> web.Response:
        return await self._change_scale(request, resource, patch=False)

    async def _patch_scale(self, request: web.Request, resource: Resource) -> web.Response:
        return await self._change_scale(request, resource, patch=True)

    async def _change_scale(self, request: web.Request, resource: Resource, patch: bool
                            ) -> web.Response:
        info = request.match_info
        stored = resource.require(info["ns"], info["name"])
        current = self._scale_of(stored.obj)
        body = await _body(request)
        if patch:
            if body is None:
                raise bad_request("the body of a patch request must not be empty")
            scale = apply_patch(request.headers.get("Content-Type", ""), current, body)
        elif isinstance(body, dict):
            scale = body
        else:
            raise bad_request("the body of the request must be a Scale object")
        replicas = (scale.get("spec") or {}).get("replicas")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise invalid("Scale", info["name"], [(
                "spec.replicas", "FieldValueInvalid",
                f"Invalid value: {replicas!r}: must be greater than or equal to 0")],
                "autoscaling")
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv not in (None, "") and str(rv) != stored.obj["metadata"]["resourceVersion"]:
            raise conflict(resource.plural, info["name"], "the object has been modified; "
                           "please apply your changes to the latest version and try again",
                           resource.group)

        def change(obj: dict[str, Any]) -> None:
            if obj["spec"].get("replicas") != replicas:
                obj["spec"]["replicas"] = replicas
                obj["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1

        updated = resource.mutate(info["ns"], info["name"], change)
        return json_response(self._scale_of(updated.obj))

    # delete ------------------------------------------------------------------------------

    async def _delete(self, request: web.Request, resource: Resource) -> web.Response:
        info = request.match_info
        stored = resource.require(info["ns"], info["name"])
        options = await self.api._delete_options(request)
        self.api._check_preconditions(stored, options, resource.plural, info["name"])
        policy = self._policy(request, options)
        self._remove(resource, stored, policy)
        details = {"name": info["name"], "group": resource.group, "kind": resource.plural,
                   "uid": stored.obj["metadata"].get("uid")}
        return json_response(success_status(200, details))

    def _remove(self, resource: Resource, stored: Stored, policy: str) -> Stored:
        meta = stored.obj["metadata"]
        final = resource.delete(meta["namespace"], meta["name"])
        self.controllers.collect(final.obj, policy)
        return final

    @staticmethod
    def _policy(request: web.Request, options: dict[str, Any]) -> str:
        policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        if policy is None:
            orphan = options.get("orphanDependents")
            if orphan is None:
                orphan = request.query.get("orphanDependents") in ("true", "1")
            policy = "Orphan" if orphan else "Background"
        if policy not in PROPAGATION:
            raise bad_request(f'propagationPolicy: Unsupported value: "{policy}": supported '
                              'values: "Orphan", "Background", "Foreground"')
        return policy

    async def _delete_collection(self, request: web.Request, resource: Resource
                                 ) -> web.Response:
        namespace = request.match_info["ns"]
        options = await self.api._delete_options(request)
        policy = self._policy(request, options)
        pred = self.api._selection(request, resource)
        gone = [self._remove(resource, s, policy) for s in resource.select(namespace, pred)]
        head = (f'{{"kind":"{resource.list_kind}","apiVersion":"{resource.list_api_version}",'
                f'"metadata":{{"resourceVersion":"{self.api.store.rv}"}},"items":[').encode()
        return raw_response(head + b",".join(s.raw for s in gone) + b"]}")
