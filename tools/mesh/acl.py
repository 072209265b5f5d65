"""Consul ACLs of a mesh, derived from topology.toml: who may register, discover, read.

With ``AGENT_ACL_HCL`` the agent denies by default (and so do intentions). ``bootstrap``
takes the management token once per run directory; ``apply`` creates the rest, one token
per grant, each written to ``<tokens dir>/<name>.token`` with mode 0600:

  <service>   every service of topology.toml, the edge and NATS: a Consul *service
              identity* (service:write on its name and its -sidecar-proxy, read on every
              service and node). It registers the instance and runs its sidecar
              (`consul connect envoy -token-file`); it cannot register as another
              service nor fetch another service's leaf certificate.
  prometheus  node and service read: what Consul service discovery needs, and agent read
              for the agent's /v1/agent/metrics; nothing more.
  operator    the operator's service identity (its sidecar, tools/mesh/operator.py) and
              read-only on everything a person looks at (services, nodes, intentions,
              config entries): the token `make up` prints for the Consul UI. It may
              register only "operator" and write nothing else.
  agent       the agent's own token (node write, service read), set on the agent.

The anonymous token gets no policy: with default deny it reads nothing.

Verified against Consul 1.14.11 by tests/acl/test_consul_acl.py. ``switch_on`` is what
`python -m tools.mesh up` runs on a mesh with ACLs (topology.toml ``[mesh] acl = true``
or `make up ACL=1`), once Consul has a leader; tests/acl/test_mesh_acl.py runs a whole
mesh that way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.mesh import hosts
from tools.mesh.edge.settings import SERVICE_NAME as EDGE
from tools.mesh.http import request
from tools.mesh.nats import SERVICE_NAME as NATS
from tools.mesh.plan import MeshPlan
from tools.mesh.postgres import Postgres
from tools.mesh.topology import Topology

# The agent's acl stanza (passed as -hcl or a -config-file).
AGENT_ACL_HCL = (
    'acl { enabled = true, default_policy = "deny", down_policy = "extend-cache", '
    "enable_token_persistence = true }"
)

# Consul service discovery needs node and service read; agent read is for the agent's
# own /v1/agent/metrics (the `consul` scrape job).
PROMETHEUS_RULES = """
node_prefix "" { policy = "read" }
service_prefix "" { policy = "read" }
agent_prefix "" { policy = "read" }
"""
OPERATOR_RULES = """
node_prefix "" { policy = "read" }
service_prefix "" { policy = "read" intentions = "read" }
agent_prefix "" { policy = "read" }
mesh = "read"
operator = "read"
"""


def agent_rules(node: str) -> str:
    return f'node "{node}" {{ policy = "write" }}\nservice_prefix "" {{ policy = "read" }}\n'


@dataclass(frozen=True)
class Grant:
    """One token: a service identity, or a policy of its own (named like the grant)."""

    name: str
    description: str
    service_identity: str | None = None
    rules: str | None = None


@dataclass(frozen=True)
class Tokens:
    """Where a run's tokens live: ``<dir>/<name>.token`` (mode 0600)."""

    directory: Path
    secrets: dict[str, str] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.token"


def grants(topology: Topology, *, connect_services: Iterable[str], node: str) -> list[Grant]:
    """Every token of a mesh: one service identity per service of ``topology`` and per
    other Connect service (the edge, NATS), Prometheus's, the operator's, the agent's."""
    names = sorted({*topology.services, *connect_services})
    return [
        *(Grant(n, f"meshmart {n}: registers {n} and runs its sidecar", service_identity=n)
          for n in names),
        Grant("prometheus", "meshmart Prometheus: Consul service discovery",
              rules=PROMETHEUS_RULES),
        Grant("operator", "meshmart operator: its sidecar, and read-only (the Consul UI)",
              service_identity="operator", rules=OPERATOR_RULES),
        Grant("agent", f"meshmart agent of node {node}", rules=agent_rules(node)),
    ]


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret)
    os.chmod(path, 0o600)  # also when the file was there with other bits


def bootstrap(consul_url: str, token_file: Path) -> str:
    """The management token: taken from Consul once (PUT /v1/acl/bootstrap) and kept in
    ``token_file`` (0600); read back from there afterwards."""
    if token_file.exists():
        return token_file.read_text().strip()
    body, _ = request(f"{consul_url}/v1/acl/bootstrap", method="PUT", data=b"", timeout=10)
    secret: str = json.loads(body)["SecretID"]
    _write_secret(token_file, secret)
    return secret


def _put(consul_url: str, path: str, body: dict[str, Any], token: str) -> Any:
    answer, _ = request(f"{consul_url}{path}", method="PUT", data=json.dumps(body).encode(),
                        timeout=10, token=token)
    return json.loads(answer) if answer else None


def apply(consul_url: str, management: str, wanted: list[Grant], tokens: Tokens) -> Tokens:
    """Create each grant's policy and token and write the token files; set the agent's
    token on the agent. Meant for a fresh Consul (a run starts with an empty data dir)."""
    for grant in wanted:
        token: dict[str, Any] = {"Description": grant.description}
        if grant.service_identity is not None:
            token["ServiceIdentities"] = [{"ServiceName": grant.service_identity}]
        if grant.rules is not None:
            policy = f"meshmart-{grant.name}"
            _put(consul_url, "/v1/acl/policy",
                 {"Name": policy, "Description": grant.description, "Rules": grant.rules},
                 management)
            token["Policies"] = [{"Name": policy}]
        created = _put(consul_url, "/v1/acl/token", token, management)
        tokens.secrets[grant.name] = created["SecretID"]
        _write_secret(tokens.path(grant.name), created["SecretID"])
    if "agent" in tokens.secrets:
        _put(consul_url, "/v1/agent/token/agent", {"Token": tokens.secrets["agent"]}, management)
    return tokens



# The grants beside topology.toml's services: the Connect services the tools run (the
# databases of a mesh on PostgreSQL too, one identity each).
def mesh_grants(plan: MeshPlan, node: str = "meshmart") -> list[Grant]:
    own = grants(plan.topology, connect_services=[EDGE, NATS, *Postgres(plan).connect_services()],
                 node=node)
    # With more hosts each one's agent has a token of its own node (tools/mesh/hosts.py).
    many = plan.host_count if plan.pods else 1
    return own + [Grant(f"agent-host{h}", f"meshmart agent of node {hosts.node_name(h)}",
                        rules=agent_rules(hosts.node_name(h))) for h in range(2, many + 1)]


def switch_on(plan: MeshPlan) -> bool:
    """Bootstrap the ACLs of ``plan``'s Consul and write every token, unless this run
    directory has them already (a running mesh); True when it did. The management token
    is ``<run>/acl/management.token``, the others next to it (all 0600)."""
    management_file = plan.token_file("management")
    assert management_file is not None, "switch_on is for a mesh with ACLs"
    if management_file.exists():
        return False
    management = bootstrap(plan.consul_url, management_file)
    tokens = apply(plan.consul_url, management, mesh_grants(plan), Tokens(plan.tokens_dir))
    for host, url in hosts.agent_urls(plan).items():
        if host > 1:  # host 1's agent got "agent" in apply
            _put(url, "/v1/agent/token/agent", {"Token": tokens.secrets[f"agent-host{host}"]},
                 management)
    return True
