"""`status`: the live table of a mesh (instances, health, sidecars), each component's
block, every caller's circuits and canary splits, and the hints `up` prints."""

from __future__ import annotations

from tools.mesh import canary, envoy
from tools.mesh.control.components import components
from tools.mesh.control.state import instance_states
from tools.mesh.http import HTTPFailure
from tools.mesh.plan import MeshPlan, shell_line
from tools.mesh.table import render_table


def render_status(plan: MeshPlan) -> str:
    try:
        states = {s.instance_id: s for s in instance_states(plan)}
    except HTTPFailure as failure:
        return f"Consul at {plan.consul_url} does not answer ({failure}): is the mesh up?"
    rows = []
    # With more hosts (tools/mesh/hosts.py) each instance's host, and a block of them.
    many_hosts = plan.pods and plan.host_count > 1
    for inst in plan.instances():
        s = states[inst.instance_id]
        rows.append([
            inst.service,
            inst.instance_id,
            *([str(inst.host)] if many_hosts else []),
            inst.grpc_target,
            s.health,
            f"{s.sidecar_ready} {inst.address}:{inst.sidecar_port} ({s.sidecar_health})",
            str(inst.admin_port),
            f"{s.process} {s.pid or ''}".strip(),
        ])
    table = render_table(
        ["service", "instance", *(["host"] if many_hosts else []), "address", "health",
         "sidecar (mTLS listener)", "admin", "process"],
        rows,
    )
    # Each component's block (the event bus's streams and consumers, rate / errors / p99
    # from Prometheus), the callers' circuits, and the services with two releases.
    blocks = [table, *(part.render_status() for part in components(plan)),
              render_circuits(plan), canary.render(plan)]
    return "\n\n".join(block for block in blocks if block)


def render_circuits(plan: MeshPlan) -> str:
    """Per caller instance and upstream, what its sidecar sees right now."""
    rows = []
    for inst in plan.instances():
        if not inst.upstream_ports or envoy.ready(inst.admin_url) != "LIVE":
            continue
        try:
            # Every upstream cluster, subset and failover ones included (a canary split).
            counters = envoy.stats(inst.admin_url, envoy.UPSTREAM_CLUSTERS)
        except HTTPFailure:
            continue
        for upstream in sorted(inst.upstream_ports):
            try:
                hosts = envoy.hosts(inst.admin_url, upstream)
            except HTTPFailure:
                hosts = []
            healthy = sum(1 for h in hosts if h.health_flags == "healthy")
            ejected = sum(1 for h in hosts if h.ejected)

            def stat(
                suffix: str, upstream: str = upstream, counters: dict[str, int] = counters
            ) -> int:
                return envoy.cluster_stat(counters, upstream, suffix)

            # Calls refused at a limit: concurrent requests (Envoy 1.40 counts HTTP/2's as
            # active_overflow), pending requests, connections.
            overflow = sum(
                stat(s) for s in ("upstream_rq_active_overflow", "upstream_rq_pending_overflow",
                                  "upstream_cx_overflow")
            )
            rows.append([
                inst.instance_id,
                upstream,
                inst.upstream_target(upstream),
                f"{healthy}/{len(hosts)}",
                str(ejected),
                str(stat("upstream_rq_active")),
                str(stat("upstream_rq_total")),
                str(stat("upstream_rq_retry")),
                str(overflow),
                "OPEN" if stat("circuit_breakers.default.rq_open") else "closed",
            ])
    if not rows:
        return "(no caller sidecar is live yet)"
    return render_table(
        ["caller", "upstream", "local listener", "healthy", "ejected", "active", "requests",
         "retries", "overflow", "circuit"],
        rows,
    )


def hints(plan: MeshPlan) -> str:
    operator = plan.token_file("operator")  # with ACLs, no token reads nothing
    token = "" if operator is None else f"-H \"X-Consul-Token: $(cat {operator})\" "
    lines = [
        f"Consul UI          http://{plan.consul_http}/ui/",
        f"health in Consul   curl -s {token}"
        f"'http://{plan.consul_http}/v1/health/service/catalog?passing'",
    ]
    by_id = {i.instance_id: i for i in plan.instances()}
    # grpcurl against a service: through the operator's sidecar (tools/mesh/operator.py,
    # its hints), never a service's own port, which with pods only its sidecar reaches.
    if "cart-1" in by_id and "catalog" in by_id["cart-1"].upstream_ports:
        cart = by_id["cart-1"]
        grpcurl = shell_line(plan.in_pod(cart, ["grpcurl"]))
        lines += [
            "through the mesh   (as cart: cart-1's sidecar -> mTLS -> a catalog sidecar; the "
            "intention allows only CatalogService, so use the protoset, not reflection)",
            f"                   {grpcurl} -plaintext -protoset gen/descriptors/meshmart.protoset "
            f"-d '{{\"page_size\": 2}}' {cart.upstream_target('catalog')} "
            "meshmart.catalog.v1.CatalogService/ListProducts",
            f"sidecar stats      curl -s '{cart.admin_url}/stats?filter=^cluster.catalog"
            ".*upstream_rq_(total|retry)'",
        ]
    lines += [
        "logs               make logs S=<service>     (service and sidecar logs, followed)",
        "status             make status               stop: make down",
    ]
    return "\n".join(lines)
