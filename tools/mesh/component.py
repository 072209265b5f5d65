"""The interface of a mesh component: a part of a mesh run beside Consul and the service
instances with their sidecars (NATS, Prometheus and Zipkin, the edge gateway, ...).

A component is built from the ``MeshPlan`` of the run and answers for its own part at
each point where `python -m tools.mesh` needs one: the programs supervisord runs, what
Consul's agent and every service instance are given, the calls the intentions must
allow, readiness, `make status` and the hints `make up` prints. Each method has a
default that adds nothing, so a component implements only the points it uses.
tools/mesh/control/components.py holds the list of the components of a run.
"""

from __future__ import annotations

from typing import Any, Protocol

from tools.mesh.plan import Program
from tools.mesh.topology import Instance


class Component(Protocol):
    def programs(self) -> list[Program]:
        """The supervisord programs of this component (none when it does not run)."""
        return []

    def consul_args(self) -> list[str]:
        """Extra command-line arguments of the Consul agent."""
        return []

    def service_env(self, inst: Instance) -> dict[str, str]:
        """Environment added to service instance ``inst``."""
        return {}

    def edges(self) -> set[tuple[str, str]]:
        """(caller, callee) pairs this component adds to topology.toml's call graph, which
        the intentions must allow."""
        return set()

    def config_entries(self) -> list[dict[str, Any]]:
        """Consul config entries derived from the plan (Kind, Name, ...), written by `up`
        after consul/config-entries/; the committed HCL is for what does not vary by run."""
        return []

    def connect_services(self) -> list[str]:
        """Connect services this component registers beyond the edge and NATS (each
        gets an ACL service identity, tools/mesh/acl.py)."""
        return []

    def wait_ready(self, deadline: float) -> list[str]:
        """Block until the component is ready (raise past ``deadline``); returns notices
        for the operator (e.g. a part skipped because its binary is missing)."""
        return []

    def render_status(self) -> str:
        """Its block of `make status`, or "" for none."""
        return ""

    def hints(self) -> str:
        """Its lines of the hints `make up` prints at the end, or "" for none."""
        return ""

