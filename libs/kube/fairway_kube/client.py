"""The official Kubernetes client, configured from a kubeconfig or from inside a cluster."""

import json
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


def api_client(kubeconfig: str | None = None, connections: int = 32) -> client.ApiClient:
    """The given kubeconfig (a service's KUBECONFIG setting), else the in-cluster service
    account; `connections`: how many the pool keeps open to the API server (as many as calls
    may be in flight at once, or the surplus are opened and closed again per call)."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    # Many concurrent calls from threads: a pool per worker thread would be wasteful.
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


def raw_json(response: Any) -> Any:
    """Body of a `_preload_content=False` call as plain JSON (no model deserialisation)."""
    return json.loads(response.data)


def status_code(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None
