"""What the REST handlers of kubesim's resource groups beyond pods and nodes share: routing a
method to one resource, and reading (list, watch, get) through the core API's machinery."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .api import Api
from .store import Resource


class ResourceGroupApi:
    """Reads for namespaced resources as the core API serves them, and replace and patch as
    one change; a subclass adds `_change` (what its kinds check), the other writes and the
    routes."""

    def __init__(self, api: Api) -> None:
        self.api = api

    @staticmethod
    def _handler(method: Any, resource: Resource) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await method(request, resource)
        return handle

    async def _list(self, request: web.Request, resource: Resource) -> web.StreamResponse:
        return await self.api._list_or_watch(request, resource, request.match_info.get("ns"))

    async def _watch(self, request: web.Request, resource: Resource) -> web.StreamResponse:
        return await self.api._watch(request, resource, request.match_info.get("ns"),
                                     self.api._selection(request, resource))

    async def _get(self, request: web.Request, resource: Resource) -> web.Response:
        info = request.match_info
        return self.api._one(request, resource, resource.require(info["ns"], info["name"]))

    async def _replace(self, request: web.Request, resource: Resource) -> web.Response:
        return await self._change(request, resource, patch=False)

    async def _patch(self, request: web.Request, resource: Resource) -> web.Response:
        return await self._change(request, resource, patch=True)

    async def _change(self, request: web.Request, resource: Resource, patch: bool
                      ) -> web.Response:
        raise NotImplementedError
