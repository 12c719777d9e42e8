"""Services, Endpoints, EndpointSlices and ConfigMaps: what a workload needs to be reached and
to read its configuration.

- **Admission** as the API server validates and defaults these kinds (Kubernetes' own 422
  causes, naming the field): DNS-1035 Service names, ports 1-65535 with unique names, protocol
  TCP | UDP | SCTP, selector values, ConfigMap keys and the 1 MiB limit.
- **ClusterIPs** from `SERVICE_CIDR`, unique among Services and kept for a Service's life;
  `clusterIP: None` makes a headless Service.
- **The endpoints controllers**: for every Service with a selector, an Endpoints object (named
  after the Service) and an EndpointSlice (labelled `kubernetes.io/service-name`) list the pods
  of its namespace that match the selector and have a pod IP, rewritten whenever one of them
  changes: ready pods in `addresses`, the others in `notReadyAddresses` (all in `addresses`
  with `publishNotReadyAddresses`); a pod's `spec.hostname` is its endpoint's hostname when its
  `spec.subdomain` names the Service, which is how the peers of a headless Service resolve.

Their REST handlers are in `network_api`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from .errors import ApiError, invalid
from .objects import _DNS_LABEL, _DNS_SUBDOMAIN, _LABEL_NAME, new_uid, now_rfc3339
from .store import DELETED, MODIFIED, Event, Resource, Store, Stored

DISCOVERY = "discovery.k8s.io"
DISCOVERY_V1 = DISCOVERY + "/v1"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
# Where ClusterIPs come from: kubeadm's default service CIDR. The first address is the
# `kubernetes` Service's on a real cluster, and the next few are kept for DNS and the like.
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
_FIRST_DYNAMIC = 10
CONFIG_MAP_MAX_BYTES = 1024 * 1024
PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP",)

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")  # IANA_SVC_NAME, also needs a letter

Cause = tuple[str, str, str]
Ports = tuple[tuple[str, int, str], ...]  # (name, port, protocol) as a pod serves them

RESOURCE_DOCS: list[dict[str, Any]] = [
    {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service",
     "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
               "watch"], "shortNames": ["svc"], "categories": ["all"]},
    {"name": "endpoints", "singularName": "endpoints", "namespaced": True, "kind": "Endpoints",
     "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
               "watch"], "shortNames": ["ep"]},
    {"name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
     "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
               "watch"], "shortNames": ["cm"]},
]
DISCOVERY_DOCS: list[dict[str, Any]] = [
    {"name": "endpointslices", "singularName": "endpointslice", "namespaced": True,
     "kind": "EndpointSlice", "verbs": ["create", "delete", "deletecollection", "get", "list",
                                        "patch", "update", "watch"]},
]
DISCOVERY_GROUP = {"name": DISCOVERY, "versions": [{"groupVersion": DISCOVERY_V1,
                                                     "version": "v1"}],
                   "preferredVersion": {"groupVersion": DISCOVERY_V1, "version": "v1"}}


def add_resources(store: Store) -> None:
    """The four kinds, in a store that already holds pods."""
    store.add("services", "Service", namespaced=True)
    store.add("endpoints", "Endpoints", namespaced=True)
    store.add("configmaps", "ConfigMap", namespaced=True)
    store.add("endpointslices", "EndpointSlice", namespaced=True, api_version=DISCOVERY_V1,
              group=DISCOVERY)


# Admission ---------------------------------------------------------------------------------

def _label_value_causes(values: Any, at: str) -> list[Cause]:
    if values is None:
        return []
    if not isinstance(values, dict):
        return [(at, "FieldValueInvalid", "must be a map of strings")]
    causes: list[Cause] = []
    for key, value in values.items():
        prefix, _, name = str(key).rpartition("/")
        if not name or len(name) > 63 or not _LABEL_NAME.match(name) or (
                prefix and not _DNS_SUBDOMAIN.match(prefix)):
            causes.append((at, "FieldValueInvalid", f'Invalid value: "{key}": name part must '
                           "consist of alphanumeric characters, '-', '_' or '.', and must "
                           "start and end with an alphanumeric character"))
        if not isinstance(value, str):
            causes.append((f"{at}[{key}]", "FieldValueInvalid", "must be a string"))
        elif value and (len(value) > 63 or not _LABEL_NAME.match(value)):
            causes.append((at, "FieldValueInvalid", f'Invalid value: "{value}": a valid label '
                           "must be an empty string or consist of alphanumeric characters, "
                           "'-', '_' or '.', and must start and end with an alphanumeric "
                           "character"))
    return causes


def _is_port_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _port_name_causes(name: str, at: str) -> list[Cause]:
    if len(name) > 15 or not _PORT_NAME.match(name) or "--" in name or not any(
            c.isalpha() for c in name):
        return [(at, "FieldValueInvalid", f'Invalid value: "{name}": must be no more than 15 '
                 "characters, contain only lowercase alphanumeric characters or '-', contain "
                 "at least one letter, and not start or end with '-' nor contain '--'")]
    return []


def _service_port_causes(ports: Any, headless: bool) -> list[Cause]:
    if ports is None or ports == []:
        return [] if headless else [("spec.ports", "FieldValueRequired", "Required value")]
    if not isinstance(ports, list):
        return [("spec.ports", "FieldValueInvalid", "must be a list of ports")]
    causes: list[Cause] = []
    names: set[str] = set()
    pairs: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        at = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            causes.append((at, "FieldValueInvalid", "must be an object"))
            continue
        causes += _port_name_of_service_causes(port.get("name") or "", at, names, len(ports))
        number = port.get("port")
        if number is None:
            causes.append((f"{at}.port", "FieldValueRequired", "Required value"))
        elif not _is_port_number(number):
            causes.append((f"{at}.port", "FieldValueInvalid", f"Invalid value: {number!r}: "
                           "must be between 1 and 65535, inclusive"))
        protocol = port.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            causes.append((f"{at}.protocol", "FieldValueNotSupported",
                           f'Unsupported value: "{protocol}": supported values: "SCTP", '
                           '"TCP", "UDP"'))
        if (number, protocol) in pairs:
            causes.append((at, "FieldValueDuplicate", f"Duplicate value: {{port: {number}, "
                           f"protocol: {protocol}}}"))
        pairs.add((number, protocol))
        causes += _target_port_causes(port.get("targetPort"), f"{at}.targetPort")
    return causes


def _port_name_of_service_causes(name: Any, at: str, names: set[str], count: int
                                 ) -> list[Cause]:
    """A port's name: required when there are several, a DNS label, unique."""
    if not name:
        return [(f"{at}.name", "FieldValueRequired", "Required value")] if count > 1 else []
    if not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.match(name):
        return [(f"{at}.name", "FieldValueInvalid", f'Invalid value: "{name}": a lowercase '
                 "RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                 "and must start and end with an alphanumeric character")]
    if name in names:
        return [(f"{at}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"')]
    names.add(name)
    return []


def _target_port_causes(target: Any, at: str) -> list[Cause]:
    """A number (1-65535) or the name of a container port."""
    if target is None:
        return []
    if isinstance(target, str) and not target.isdigit():
        return _port_name_causes(target, at)
    value = int(target) if isinstance(target, str) else target
    if not _is_port_number(value):
        return [(at, "FieldValueInvalid", f"Invalid value: {target!r}: must be between 1 and "
                 "65535, inclusive")]
    return []


def service_causes(obj: Mapping[str, Any]) -> list[Cause]:
    """What the API server refuses in a Service (its name checked by the caller)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    type_ = spec.get("type", "ClusterIP")
    if type_ not in SERVICE_TYPES:
        causes.append(("spec.type", "FieldValueNotSupported", f'Unsupported value: "{type_}": '
                       "supported values: " + ", ".join(f'"{t}"' for t in SERVICE_TYPES)
                       + " (kubesim serves ClusterIP and headless Services)"))
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    if cluster_ip not in (None, "", "None"):
        try:
            address = ipaddress.ip_address(cluster_ip)
        except ValueError:
            address = None
        if address is None or address not in SERVICE_CIDR:
            causes.append(("spec.clusterIPs[0]", "FieldValueInvalid",
                           f'Invalid value: "{cluster_ip}": failed to allocate IP '
                           f"{cluster_ip}: the provided IP ({cluster_ip}) is not in the valid "
                           f"range. The range of valid IPs is {SERVICE_CIDR}"))
    causes += _service_port_causes(spec.get("ports"), headless)
    causes += _label_value_causes(spec.get("selector"), "spec.selector")
    publish = spec.get("publishNotReadyAddresses")
    if publish is not None and not isinstance(publish, bool):
        causes.append(("spec.publishNotReadyAddresses", "FieldValueInvalid",
                       f"Invalid value: {publish!r}: must be true or false"))
    return causes


def default_service(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    ports = []
    for port in spec.get("ports") or ():
        port = dict(port)
        port.setdefault("protocol", "TCP")
        target = port.get("targetPort")
        if target is None or target in ("", 0):
            port["targetPort"] = port["port"]
        elif isinstance(target, str) and target.isdigit():
            port["targetPort"] = int(target)
        ports.append(port)
    if "ports" in spec or ports:
        spec["ports"] = ports
    obj["status"] = {"loadBalancer": {}}


def config_map_causes(obj: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    total = 0
    seen: set[str] = set()
    for part in ("data", "binaryData"):
        values = obj.get(part)
        if values is None:
            continue
        if not isinstance(values, dict):
            causes.append((part, "FieldValueInvalid", "must be a map of strings"))
            continue
        for key, value in values.items():
            if len(key) > 253 or not _CONFIG_KEY.match(key) or key in (".", ".."):
                causes.append((f"{part}[{key}]", "FieldValueInvalid", f'Invalid value: "{key}":'
                               " a valid config key must consist of alphanumeric characters, "
                               "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                               "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
            if key in seen:
                causes.append((f"{part}[{key}]", "FieldValueDuplicate",
                               f'Duplicate value: "{key}"'))
            seen.add(key)
            if not isinstance(value, str):
                causes.append((f"{part}[{key}]", "FieldValueInvalid", "must be a string"))
                continue
            if part == "binaryData":
                try:
                    total += len(base64.b64decode(value, validate=True))
                except (binascii.Error, ValueError):
                    causes.append((f"binaryData[{key}]", "FieldValueInvalid",
                                   "must be base64-encoded bytes"))
            else:
                total += len(value.encode())
    if total > CONFIG_MAP_MAX_BYTES:
        causes.append(("", "FieldValueTooLong",
                       f"Too long: may not be more than {CONFIG_MAP_MAX_BYTES} bytes"))
    immutable = obj.get("immutable")
    if immutable is not None and not isinstance(immutable, bool):
        causes.append(("immutable", "FieldValueInvalid", "must be true or false"))
    return causes


def endpoints_causes(obj: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    subsets = obj.get("subsets") or []
    if not isinstance(subsets, list):
        return [("subsets", "FieldValueInvalid", "must be a list")]
    for i, subset in enumerate(subsets):
        if not isinstance(subset, dict):
            causes.append((f"subsets[{i}]", "FieldValueInvalid", "must be an object"))
            continue
        for part in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(subset.get(part) or ()):
                ip = address.get("ip") if isinstance(address, dict) else None
                try:
                    ipaddress.ip_address(ip or "")
                except ValueError:
                    causes.append((f"subsets[{i}].{part}[{j}].ip", "FieldValueInvalid",
                                   f'Invalid value: "{ip}": must be a valid IP address'))
        for j, port in enumerate(subset.get("ports") or ()):
            number = port.get("port") if isinstance(port, dict) else None
            if not _is_port_number(number):
                causes.append((f"subsets[{i}].ports[{j}].port", "FieldValueInvalid",
                               f"Invalid value: {number!r}: must be between 1 and 65535, "
                               "inclusive"))
    return causes


def endpoint_slice_causes(obj: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    family = obj.get("addressType")
    if family is None:
        causes.append(("addressType", "FieldValueRequired", "Required value"))
    elif family not in ("IPv4", "IPv6", "FQDN"):
        causes.append(("addressType", "FieldValueNotSupported", f'Unsupported value: '
                       f'"{family}": supported values: "FQDN", "IPv4", "IPv6"'))
    endpoints = obj.get("endpoints")
    if not isinstance(endpoints, list):
        causes.append(("endpoints", "FieldValueRequired", "Required value"))
        endpoints = []
    for i, endpoint in enumerate(endpoints):
        addresses = endpoint.get("addresses") if isinstance(endpoint, dict) else None
        if not isinstance(addresses, list) or not 1 <= len(addresses) <= 100:
            causes.append((f"endpoints[{i}].addresses", "FieldValueRequired",
                           "Required value: must contain at least 1 address"))
    for j, port in enumerate(obj.get("ports") or ()):
        number = port.get("port") if isinstance(port, dict) else None
        if number is not None and not _is_port_number(number):
            causes.append((f"ports[{j}].port", "FieldValueInvalid", f"Invalid value: "
                           f"{number!r}: must be between 1 and 65535, inclusive"))
    return causes


# Pods: the fields of a pod spec these kinds give meaning to ----------------------------------

def pod_spec_causes(spec: Mapping[str, Any]) -> list[Cause]:
    """`hostname`, `subdomain` (DNS labels) and `volumes` (unique DNS-label names; a
    `configMap` source must name a ConfigMap)."""
    causes: list[Cause] = []
    for key in ("hostname", "subdomain"):
        value = spec.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.match(value):
            causes.append((f"spec.{key}", "FieldValueInvalid", f'Invalid value: "{value}": a '
                           "lowercase RFC 1123 label must consist of lower case alphanumeric "
                           "characters or '-', and must start and end with an alphanumeric "
                           "character"))
    volumes = spec.get("volumes")
    if volumes is None:
        return causes
    if not isinstance(volumes, list):
        return [*causes, ("spec.volumes", "FieldValueInvalid", "must be a list of volumes")]
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        causes += _volume_causes(volume, f"spec.volumes[{i}]", names)
    return causes


def _volume_causes(volume: Any, at: str, names: set[str]) -> list[Cause]:
    if not isinstance(volume, dict):
        return [(at, "FieldValueInvalid", "must be an object")]
    causes: list[Cause] = []
    name = volume.get("name")
    if not name:
        causes.append((f"{at}.name", "FieldValueRequired", "Required value"))
    elif not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.match(name):
        causes.append((f"{at}.name", "FieldValueInvalid", f'Invalid value: "{name}": a '
                       "lowercase RFC 1123 label must consist of lower case alphanumeric "
                       "characters or '-', and must start and end with an alphanumeric "
                       "character"))
    elif name in names:
        causes.append((f"{at}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
    else:
        names.add(name)
    source = volume.get("configMap")
    if source is None:
        return causes
    if not isinstance(source, dict) or not source.get("name"):
        return [*causes, (f"{at}.configMap.name", "FieldValueRequired", "Required value")]
    cm = source["name"]
    if not isinstance(cm, str) or len(cm) > 253 or not _DNS_SUBDOMAIN.match(cm):
        causes.append((f"{at}.configMap.name", "FieldValueInvalid", f'Invalid value: "{cm}": '
                       "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                       "characters, '-' or '.', and must start and end with an alphanumeric "
                       "character"))
    for j, item in enumerate(source.get("items") or ()):
        for key in ("key", "path"):
            if not isinstance(item, dict) or not item.get(key):
                causes.append((f"{at}.configMap.items[{j}].{key}", "FieldValueRequired",
                               "Required value"))
    return causes


def config_maps_needed(pod: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(volume, ConfigMap) of the ConfigMaps a pod's volumes must find before its containers
    can start (those not marked `optional`)."""
    needed = []
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        source = volume.get("configMap") if isinstance(volume, dict) else None
        if isinstance(source, dict) and source.get("name") and not source.get("optional"):
            needed.append((str(volume.get("name")), str(source["name"])))
    return tuple(needed)


# ClusterIPs -------------------------------------------------------------------------------

def allocate_cluster_ip(services: Resource, wanted: str | None, name: str) -> str:
    """A free address of `SERVICE_CIDR` (the one asked for, when it is free)."""
    used = {(s.obj.get("spec") or {}).get("clusterIP") for s in services.select()}
    if wanted:
        if wanted in used:
            raise invalid("Service", name, [(
                "spec.clusterIPs", "FieldValueInvalid",
                f'Invalid value: ["{wanted}"]: failed to allocate IP {wanted}: provided IP is '
                "already allocated")])
        return wanted
    base = int(SERVICE_CIDR.network_address)
    for offset in range(_FIRST_DYNAMIC, SERVICE_CIDR.num_addresses - 1):
        candidate = str(ipaddress.ip_address(base + offset))
        if candidate not in used:
            return candidate
    raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a "
                   f"serviceIP: range is full ({SERVICE_CIDR})")


# Endpoints ---------------------------------------------------------------------------------

def _selector_matches(selector: Mapping[str, str], pod: Mapping[str, Any]) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _pod_address(pod: Mapping[str, Any], service: str) -> dict[str, Any]:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    address: dict[str, Any] = {"ip": pod["status"]["podIP"]}
    if spec.get("hostname") and spec.get("subdomain") == service:
        address["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    address["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace", ""),
                            "name": meta["name"], "uid": meta.get("uid", "")}
    return address


def _resolve_ports(service_ports: list[dict[str, Any]], pod: Mapping[str, Any]) -> Ports:
    """The service's ports as this pod serves them: a named targetPort is looked up among the
    pod's container ports (a pod without that name does not serve that port)."""
    out = []
    for port in service_ports:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str):
            number = next((p.get("containerPort")
                           for c in (pod.get("spec") or {}).get("containers") or ()
                           for p in c.get("ports") or ()
                           if p.get("name") == target
                           and p.get("protocol", "TCP") == port.get("protocol", "TCP")), None)
            if number is None:
                continue
        else:
            number = target
        out.append((port.get("name") or "", int(number), port.get("protocol", "TCP")))
    return tuple(out)


def _ports_json(ports: Ports) -> list[dict[str, Any]]:
    return [{**({"name": name} if name else {}), "port": number, "protocol": protocol}
            for name, number, protocol in ports]


def _pod_view(pod: Mapping[str, Any] | None) -> Any:
    """What of a pod the endpoints depend on (a write that changes none of it is ignored)."""
    if pod is None:
        return None
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    return (pod["metadata"].get("labels"), pod["metadata"].get("deletionTimestamp"),
            status.get("podIP"), status.get("phase"), _pod_ready(pod), spec.get("hostname"),
            spec.get("subdomain"), spec.get("nodeName"))


class EndpointsController:
    """Keeps the Endpoints and EndpointSlice of every Service with a selector in step with the
    pods it selects (the endpoints and endpointslice controllers of kube-controller-manager)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pods = store["pods"]
        self.services = store["services"]
        self.endpoints = store["endpoints"]
        self.slices = store["endpointslices"]
        store.listen(self._on_event)

    def _on_event(self, resource: Resource, event: Event) -> None:
        if resource is self.pods:
            namespace = event.stored.obj["metadata"].get("namespace", "")
            if self.services.count(namespace) == 0:
                return
            if event.type == MODIFIED and _pod_view(event.prev.obj if event.prev else None) \
                    == _pod_view(event.stored.obj):
                return
            for service in self.services.select(namespace):
                selector = (service.obj.get("spec") or {}).get("selector")
                if selector and (_selector_matches(selector, event.stored.obj) or (
                        event.prev is not None and _selector_matches(selector,
                                                                     event.prev.obj))):
                    self.sync(service.obj)
        elif resource is self.services:
            if event.type == DELETED:
                self._remove(event.stored.obj)
            else:
                self.sync(event.stored.obj)

    def sync(self, service: Mapping[str, Any]) -> None:
        meta, spec = service["metadata"], service.get("spec") or {}
        if not spec.get("selector"):
            return  # endpoints of a Service without a selector are the user's to write
        namespace, name = meta.get("namespace", ""), meta["name"]
        subsets, slice_endpoints = self._gather(namespace, name, spec)
        labels = dict(meta.get("labels") or {})
        if spec.get("clusterIP") == "None":
            labels[HEADLESS_LABEL] = ""
        self._write(self.endpoints, namespace, name, {
            "kind": "Endpoints", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            **({"subsets": subsets} if subsets else {})}, lambda obj: obj.get("subsets"))
        if not slice_endpoints:  # a slice with no endpoints still carries the ports
            slice_endpoints[tuple((p.get("name") or "", int(p["targetPort"]),
                                   p.get("protocol", "TCP")) for p in spec.get("ports") or ()
                                  if isinstance(p.get("targetPort"), int))] = []
        owner = {"apiVersion": "v1", "kind": "Service", "name": name, "uid": meta.get("uid"),
                 "controller": True, "blockOwnerDeletion": True}
        wanted = set()
        for resolved, endpoints in sorted(slice_endpoints.items()):
            # one slice per set of ports the pods serve, named after them so that it is kept
            digest = hashlib.sha256(repr(resolved).encode()).hexdigest()[:5]
            slice_name = f"{name[:57]}-{digest}"
            wanted.add(slice_name)
            self._write(self.slices, namespace, slice_name, {
                "kind": "EndpointSlice", "apiVersion": DISCOVERY_V1,
                "metadata": {"name": slice_name, "namespace": namespace, "generateName":
                             f"{name}-", "labels": {**labels, SERVICE_NAME_LABEL: name,
                                                    MANAGED_BY_LABEL: MANAGED_BY},
                             "ownerReferences": [owner]},
                "addressType": "IPv4",
                "endpoints": sorted(endpoints, key=lambda e: e["addresses"][0]),
                "ports": _ports_json(resolved)},
                lambda obj: (obj.get("endpoints"), obj.get("ports")))
        for stored in self._slices_of(namespace, name):
            if stored.obj["metadata"]["name"] not in wanted:
                self.slices.delete(namespace, stored.obj["metadata"]["name"])

    def _gather(self, namespace: str, name: str, spec: Mapping[str, Any]
                ) -> tuple[list[dict[str, Any]], dict[Ports, list[dict[str, Any]]]]:
        """The Endpoints subsets and the EndpointSlice endpoints (by the ports they serve) of
        the pods the Service selects."""
        selector = spec["selector"]
        publish = bool(spec.get("publishNotReadyAddresses"))
        ports = list(spec.get("ports") or ())
        groups: dict[Ports, dict[str, list[dict[str, Any]]]] = {}
        slice_endpoints: dict[Ports, list[dict[str, Any]]] = {}
        for stored in self.pods.select(namespace):
            pod = stored.obj
            status = pod.get("status") or {}
            if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed") \
                    or not _selector_matches(selector, pod):
                continue
            resolved = _resolve_ports(ports, pod)
            if ports and not resolved:
                continue
            address = _pod_address(pod, name)
            ready = _pod_ready(pod)
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            group = groups.setdefault(resolved, {"addresses": [], "notReadyAddresses": []})
            if publish or (ready and not terminating):
                group["addresses"].append(address)
            elif not terminating:  # Endpoints leave terminating pods out; slices say so
                group["notReadyAddresses"].append(address)
            endpoint: dict[str, Any] = {"addresses": [address["ip"]], "conditions": {
                "ready": publish or (ready and not terminating), "serving": ready,
                "terminating": terminating}}
            endpoint.update({k: address[k] for k in ("hostname", "nodeName", "targetRef")
                             if k in address})
            slice_endpoints.setdefault(resolved, []).append(endpoint)
        subsets = []
        for resolved, group in sorted(groups.items()):
            subset: dict[str, Any] = {part: sorted(group[part], key=lambda a: a["ip"])
                                      for part in ("addresses", "notReadyAddresses")
                                      if group[part]}
            if subset and resolved:
                subset["ports"] = _ports_json(resolved)
            if subset:
                subsets.append(subset)
        return subsets, slice_endpoints

    def _slices_of(self, namespace: str, service: str) -> list[Stored]:
        return [s for s in self.slices.select(namespace)
                if (s.obj["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == service
                and (s.obj["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY]

    def _write(self, resource: Resource, namespace: str, name: str, obj: dict[str, Any],
               content: Any) -> None:
        current = resource.get(namespace, name)
        if current is None:
            obj["metadata"].update(uid=new_uid(), creationTimestamp=now_rfc3339())
            resource.create(obj)
            return
        if content(current.obj) == content(obj) and (current.obj["metadata"].get("labels")
                                                     == obj["metadata"].get("labels")):
            return  # unchanged: no new version, no watch event
        old = current.obj["metadata"]
        obj["metadata"].update(uid=old.get("uid"), creationTimestamp=old.get(
            "creationTimestamp"))
        resource.update(obj)

    def _remove(self, service: Mapping[str, Any]) -> None:
        """A deleted Service takes its Endpoints and EndpointSlices with it (the garbage
        collector follows their owner references on a real cluster)."""
        namespace, name = service["metadata"].get("namespace", ""), service["metadata"]["name"]
        if (service.get("spec") or {}).get("selector"):
            with contextlib.suppress(ApiError):
                self.endpoints.delete(namespace, name)
        for stored in self._slices_of(namespace, name):
            with contextlib.suppress(ApiError):
                self.slices.delete(namespace, stored.obj["metadata"]["name"])
