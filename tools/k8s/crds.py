"""consul/config-entries/*.hcl <-> consul-k8s custom resources, one mapping both ways.

The HCL files stay the source: each is parsed with pyhcl (Consul's config entries are
HCL 1, the dialect Consul itself reads; python-hcl2 refuses their nested blocks inside
list items) and becomes the consul-k8s resource that stands for it. consul-k8s documents
its mapping per kind (the Kubernetes tab of each config entry's reference page):

- ``Kind`` becomes the resource's kind (service-defaults -> ServiceDefaults, ...), in
  the API group consul.hashicorp.com/v1alpha1;
- ``Name`` becomes metadata.name, except for service-intentions, whose destination is
  ``spec.destination.name`` (so the wildcard "*" can be one: a Kubernetes name cannot);
  proxy-defaults is always named "global";
- every other field goes under ``spec`` with its name in camelCase (MaxConnections ->
  maxConnections, HTTP -> http, EnforcingConsecutive5xx -> enforcingConsecutive5xx);
- maps whose keys are the user's own (a resolver's Subsets and Failover by subset name,
  proxy-defaults' free-form Config, Meta) keep their keys as written.

``to_entry`` is the inverse: the config entry a resource stands for, in the form
`consul config write` accepts (tests/k8s write it to a real Consul and compare with the
HCL file's own entry).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl  # type: ignore[import-untyped]

from tools.mesh.entries import entry_files

API_VERSION = "consul.hashicorp.com/v1alpha1"
KINDS = {
    "proxy-defaults": "ProxyDefaults",
    "service-defaults": "ServiceDefaults",
    "service-resolver": "ServiceResolver",
    "service-splitter": "ServiceSplitter",
    "service-router": "ServiceRouter",
    "service-intentions": "ServiceIntentions",
    # Kinds consul/config-entries/ does not use yet, with their consul-k8s resources.
    "mesh": "Mesh",
    "exported-services": "ExportedServices",
    "ingress-gateway": "IngressGateway",
    "terminating-gateway": "TerminatingGateway",
}
CONFIG_KINDS = {kind: entry for entry, kind in KINDS.items()}
# Maps keyed by the user's names (a resolver's subsets): the keys are kept as written.
NAMED_MAPS = {"Subsets", "Failover"}
# Free-form maps (proxy-defaults' Envoy Config, Meta): kept whole, keys and values.
FREE_FORM = {"Config", "Meta"}
# Acronyms consul-k8s spells lower case as a whole (HTTP -> http), not first-letter-only.
ACRONYMS = {"HTTP": "http"}
WILDCARD_INTENTIONS_NAME = "default-deny"  # metadata.name of the "*" destination


class CrdError(Exception):
    """An entry has no consul-k8s form (unknown kind, unnamed...)."""


@dataclass(frozen=True)
class MeshResource:
    """One config entry file and the consul-k8s resource that stands for it."""

    path: Path
    entry: dict[str, Any]  # the HCL file, parsed
    resource: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.resource["kind"])

    @property
    def name(self) -> str:
        return str(self.resource["metadata"]["name"])


def camel(key: str) -> str:
    if key in ACRONYMS:
        return ACRONYMS[key]
    return key[:1].lower() + key[1:]


def pascal(key: str) -> str:
    for upper, lower in ACRONYMS.items():
        if key == lower:
            return upper
    return key[:1].upper() + key[1:]


def _convert(value: Any, rename: Callable[[str], str]) -> Any:
    """Rename every field of ``value`` (recursively) except the keys of NAMED_MAPS and
    everything inside FREE_FORM."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            field = pascal(key)
            if field in FREE_FORM:
                out[rename(key)] = item
            elif field in NAMED_MAPS:
                out[rename(key)] = {name: _convert(v, rename) for name, v in item.items()}
            else:
                out[rename(key)] = _convert(item, rename)
        return out
    if isinstance(value, list):
        return [_convert(item, rename) for item in value]
    return value


def resource_name(entry: Mapping[str, Any]) -> str:
    """metadata.name of the resource for an entry ("*" cannot be a Kubernetes name)."""
    name = str(entry.get("Name", ""))
    if not name:
        raise CrdError(f"{entry.get('Kind')}: no Name")
    if name == "*":
        if entry.get("Kind") != "service-intentions":
            raise CrdError(f"{entry.get('Kind')} named '*' has no consul-k8s form")
        return WILDCARD_INTENTIONS_NAME
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        raise CrdError(f"{entry.get('Kind')} {name!r} is not a Kubernetes name")
    return name


def to_resource(entry: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """The consul-k8s resource standing for a config entry."""
    kind = str(entry.get("Kind", ""))
    if kind not in KINDS:
        raise CrdError(f"config entry kind {kind!r} has no consul-k8s resource")
    fields = {k: v for k, v in entry.items() if k not in ("Kind", "Name")}
    spec = _convert(fields, camel)
    if kind == "service-intentions":
        spec = {"destination": {"name": str(entry["Name"])}, **spec}
    return {
        "apiVersion": API_VERSION,
        "kind": KINDS[kind],
        "metadata": {"name": resource_name(entry), "namespace": namespace},
        "spec": spec,
    }


def to_entry(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The config entry a consul-k8s resource stands for (the inverse of to_resource)."""
    kind = CONFIG_KINDS[str(resource["kind"])]
    spec = dict(resource.get("spec", {}))
    if kind == "service-intentions":
        name = str(spec.pop("destination")["name"])
    else:
        name = str(resource["metadata"]["name"])
    return {"Kind": kind, "Name": name, **_convert(spec, pascal)}


def parse_entry(path: Path) -> dict[str, Any]:
    entry: dict[str, Any] = hcl.loads(path.read_text())
    return entry


def mesh_resources(root: Path, namespace: str) -> list[MeshResource]:
    """Every entry of consul/config-entries/ as its resource, in tools.mesh.entries' order."""
    out = []
    for file in entry_files(root):
        entry = parse_entry(file.path)
        out.append(MeshResource(path=file.path, entry=entry,
                                resource=to_resource(entry, namespace)))
    return out
