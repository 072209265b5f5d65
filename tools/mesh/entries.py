"""Consul config entries: apply consul/config-entries/ and check them against topology.toml.

The HCL files are the source (hand-written, every value commented); they are applied
with the real `consul config write`, in the order Consul needs (a service-router is
only accepted once its service's protocol is L7, so defaults come first). After
applying, ``check`` reads back what Consul holds and compares it with the call graph
of topology.toml, so a topology edit without its intention cannot go unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.mesh.http import HTTPFailure, get_json, request
from tools.mesh.nats import SERVICE_NAME as NATS
from tools.mesh.operator import Operator
from tools.mesh.plan import MeshPlan

ENTRIES_DIR = "consul/config-entries"
# Consul validates some kinds against others: protocol (proxy-/service-defaults)
# before routers; resolvers before splitters and routers that point at subsets.
KIND_ORDER = [
    "proxy-defaults",
    "service-defaults",
    "service-resolver",
    # A splitter names the resolver's subsets; a router may send to the split service.
    "service-splitter",
    "service-router",
    "service-intentions",
]


class EntriesError(Exception):
    """An entry could not be written, or the entries disagree with topology.toml."""


@dataclass(frozen=True)
class EntryFile:
    kind: str
    path: Path


def entry_files(root: Path) -> list[EntryFile]:
    files = [
        EntryFile(kind=path.stem, path=path)
        for path in sorted((root / ENTRIES_DIR).glob("*/*.hcl"))
        if path.stem in KIND_ORDER
    ]
    # Wildcard/global entries (in _global/) first within a kind: sorted() does that. A
    # resolver that redirects to another's subset (payment-1 -> payment) comes after the
    # resolvers: Consul refuses a redirect to a subset it does not know yet.
    return sorted(files, key=lambda f: (KIND_ORDER.index(f.kind), _redirects(f)))


def _redirects(entry: EntryFile) -> bool:
    return entry.kind == "service-resolver" and "Redirect" in entry.path.read_text()


def _cli_env(plan: MeshPlan) -> dict[str, str] | None:
    """The `consul` CLI's environment: with ACLs, the management token's file."""
    token_file = plan.token_file("management")
    if token_file is None:
        return None
    return {**os.environ, "CONSUL_HTTP_TOKEN_FILE": str(token_file)}


def apply(plan: MeshPlan) -> list[str]:
    """`consul config write` every entry file; returns what was written."""
    written = []
    for entry in entry_files(plan.root):
        result = subprocess.run(
            [str(plan.bin / "consul"), "config", "write", "-http-addr", plan.consul_http,
             str(entry.path)],
            env=_cli_env(plan), capture_output=True, text=True, check=False, timeout=30,
        )
        if result.returncode != 0:
            raise EntriesError(
                f"consul config write {entry.path.relative_to(plan.root)} failed: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        written.append(str(entry.path.relative_to(plan.root)))
    return written


def apply_derived(plan: MeshPlan, derived: list[dict[str, Any]]) -> list[str]:
    """Write the entries the run's components derive from the plan (PUT /v1/config, in
    KIND_ORDER), after the committed ones; returns "<Kind>/<Name>" of each."""
    written = []
    for entry in sorted(derived, key=lambda e: KIND_ORDER.index(e["Kind"])):
        try:
            request(f"{plan.consul_url}/v1/config", method="PUT",
                    data=json.dumps(entry).encode(), timeout=10, token=plan.consul_token)
        except HTTPFailure as failure:
            raise EntriesError(
                f"writing {entry['Kind']} {entry['Name']} failed: {failure}") from None
        written.append(f"{entry['Kind']}/{entry['Name']}")
    return written


def check(
    plan: MeshPlan,
    component_edges: set[tuple[str, str]],
    tcp_services: frozenset[str] = frozenset(),
) -> list[str]:
    """Problems where Consul's entries and topology.toml, with the (caller, callee) pairs
    the run's components add, disagree (empty: consistent). ``tcp_services``: the
    components' services whose protocol is tcp (a mesh on PostgreSQL's databases)."""
    topo = plan.topology
    problems: list[str] = []
    try:
        token = plan.consul_token
        intentions = get_json(f"{plan.consul_url}/v1/config/service-intentions", token=token)
        defaults = get_json(f"{plan.consul_url}/v1/config/service-defaults", token=token)
        routers = get_json(f"{plan.consul_url}/v1/config/service-router", token=token)
        resolvers = get_json(f"{plan.consul_url}/v1/config/service-resolver", token=token)
    except HTTPFailure as failure:
        return [f"cannot read config entries from Consul: {failure}"]

    allowed: set[tuple[str, str]] = set()
    wildcard_deny = False
    for entry in intentions:
        dest = entry["Name"]
        for source in entry.get("Sources") or []:
            if dest == "*" and source["Name"] == "*" and source.get("Action") == "deny":
                wildcard_deny = True
                continue
            perms = source.get("Permissions") or []
            if source.get("Action") == "allow" or any(p["Action"] == "allow" for p in perms):
                allowed.add((source["Name"], dest))
            if perms and perms[-1]["Action"] != "deny":
                problems.append(
                    f"intention {source['Name']} -> {dest}: the permission list must end with "
                    f"an explicit deny (else unmatched requests fall through to allow)"
                )
    if not wildcard_deny:
        problems.append("no default-deny intention (* -> * deny)")
    # The operator's intentions (exactly reflection, health, reads, admin services) and
    # its per-instance resolvers (tools/mesh/operator.py).
    problems += Operator(plan).entry_problems(intentions, resolvers)
    # The call graph, plus the components' calls (the edge gateway -> every service with
    # public RPCs, event clients -> NATS).
    edges = topo.edges() | component_edges
    for caller, callee in sorted(edges - allowed):
        problems.append(
            f"{caller} -> {callee} is in topology.toml but no intention allows it "
            f"(add {ENTRIES_DIR}/{callee}/service-intentions.hcl)"
        )
    for caller, callee in sorted(allowed - edges):
        problems.append(f"intention allows {caller} -> {callee}, which topology.toml does not")

    def names(entries: list[dict[str, object]]) -> set[str]:
        return {str(e["Name"]) for e in entries}

    for kind, have in (
        ("service-defaults", names(defaults)),
        ("service-router", names(routers)),
        ("service-resolver", names(resolvers)),
    ):
        for service in sorted(set(topo.services) - have):
            problems.append(f"no {kind} for {service} ({ENTRIES_DIR}/{service}/{kind}.hcl)")
    for entry in defaults:
        # The event bus is plain TCP (tools/mesh/nats.py), and so are the databases.
        if entry["Name"] == NATS or entry["Name"] in tcp_services:
            if str(entry.get("Protocol", "")) != "tcp":
                problems.append(f"service-defaults {entry['Name']}: Protocol must be tcp")
            continue
        if str(entry.get("Protocol", "")) != "grpc":
            problems.append(f"service-defaults {entry['Name']}: Protocol must be grpc")
    return problems
