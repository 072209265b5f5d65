"""Calling "as" an instance of a running mesh, the one way the tests and tools/chaos do:
a plaintext channel to that instance's sidecar listener for an upstream, where the
service itself sends its calls, so the caller's Envoy applies its retries, limits and
outlier detection, and the callee's Envoy the intentions for that caller's identity.

With pods a service's listeners are on its pod's loopback, which the host does not
reach: the channel then goes through a port forward into the caller's pod
(``MeshPlan.reach``, as `kubectl port-forward` would). The edge's sidecar (the ingress)
is on the host either way: ``as_edge`` calls a service as the edge forwards a shopper's
call, for the writes a test makes (sign-ups, carts, orders), which the operator may not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from harness.load import loopback_channel
from tools.mesh.edge.mesh import Edge
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import Instance


@asynccontextmanager
async def caller_channel(
    plan: MeshPlan, caller: Instance, upstream: str
) -> AsyncIterator[grpc.aio.Channel]:
    """A channel on which every call is ``caller``'s call to ``upstream``."""
    with plan.reach(caller, caller.upstream_ports[upstream]) as target:
        async with loopback_channel(target) as channel:
            yield channel


def as_edge(plan: MeshPlan, service: str) -> grpc.aio.Channel:
    """A channel on which every call is the edge's call to ``service`` (the edge's sidecar
    listener, on the host: no forward to close)."""
    return loopback_channel(Edge(plan).instance.upstream_target(service))
