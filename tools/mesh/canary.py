"""The canary split of a service with two releases: `make canary PCT=<n>` and the split in
`make status`.

A service with a ``canary`` in topology.toml (recommendation: Python v1, Go v2) has, in
consul/config-entries/<service>/, a service-resolver with one subset per release (by
meta.version) and a service-splitter weighting them. ``set_split`` rewrites the splitter
live through Consul's config API: Consul pushes the new route weights to every caller's
Envoy over xDS within a second, and nothing restarts. The committed splitter file stays
as it is (it is the weight `make up` starts from).

``render`` shows, per release: the weight, the instances (passing/registered) and what the
release answered so far — requests and the share that failed — read from the public
listener of each instance's sidecar (Envoy's gRPC stats: a gRPC error is an HTTP 200 with
a grpc-status trailer, so only the gRPC-aware counters see it).

    python -m tools.mesh.canary set 25      # 25% to the canary (v2), 75% to v1
    python -m tools.mesh.canary show
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tools.mesh import envoy
from tools.mesh.cli import mesh_parser, plan_of
from tools.mesh.http import HTTPFailure, get_json, request
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import Instance, Service, TopologyError

# Consul accepts split weights in hundredths of a percent.
_STEP = Decimal("0.01")
# gRPC stats of a sidecar's public listener: Consul turns on Envoy's grpc_stats filter for
# protocol "grpc"; calls to the local app count under the cluster "local_app".
_GRPC_STAT = re.compile(
    r"^cluster\.local_app\.grpc\.(?P<method>.+)\.(?P<what>success|failure|total)$"
)


class CanaryError(Exception):
    """The split cannot be set (no canary, bad percentage, Consul refused it)."""


@dataclass(frozen=True)
class Releases:
    service: str
    stable: str  # subset of the service's own instances (e.g. "v1")
    canary: str  # subset of its canary (e.g. "v2")


def releases(plan: MeshPlan, service: str | None = None) -> Releases:
    """The releases of ``service`` (default: the one service with a canary)."""
    with_canary = [s for s in plan.topology.services.values() if s.canary is not None]
    if service is not None:
        found = plan.topology.services.get(service)
        if found is None or found.canary is None:
            names = ", ".join(s.name for s in with_canary) or "none"
            raise CanaryError(
                f"{service!r} has no canary in topology.toml (services with one: {names})"
            )
        return _releases(found)
    if len(with_canary) != 1:
        raise CanaryError(
            "name the service: " + (", ".join(s.name for s in with_canary) or "none has a canary")
        )
    return _releases(with_canary[0])


def _releases(service: Service) -> Releases:
    assert service.canary is not None
    # The resolver's stable subset is named "v1" when the service's instances carry no
    # release label (they register the commit then): see service-resolver.hcl.
    return Releases(service.name, service.version or "v1", service.canary.version)


def parse_percent(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CanaryError(f"PCT must be a number from 0 to 100, got {text!r}") from None
    if not value.is_finite() or not 0 <= value <= 100 or value != value.quantize(_STEP):
        raise CanaryError(f"PCT must be from 0 to 100 in steps of 0.01, got {text!r}")
    return value


def splitter_entry(rel: Releases, percent: Decimal) -> dict[str, object]:
    """The service-splitter giving ``percent`` to the canary and the rest to stable."""
    return {
        "Kind": "service-splitter",
        "Name": rel.service,
        "Splits": [
            {"Weight": float(100 - percent), "ServiceSubset": rel.stable},
            {"Weight": float(percent), "ServiceSubset": rel.canary},
        ],
    }


def set_split(plan: MeshPlan, rel: Releases, percent: Decimal) -> None:
    """Write the splitter into the running mesh's Consul (live; nothing restarts)."""
    body = json.dumps(splitter_entry(rel, percent)).encode()
    try:
        answer, _ = request(f"{plan.consul_url}/v1/config", method="PUT", data=body, timeout=10,
                            token=plan.consul_token)
    except HTTPFailure as failure:
        raise CanaryError(f"Consul refused the split: {failure}") from None
    if answer.strip() != "true":
        raise CanaryError(f"Consul did not write the split (answered {answer.strip()!r})")


def current_split(plan: MeshPlan, rel: Releases) -> dict[str, float]:
    """Subset -> weight of the splitter Consul holds ({} when there is none)."""
    try:
        entry = get_json(f"{plan.consul_url}/v1/config/service-splitter/{rel.service}",
                         token=plan.consul_token)
    except HTTPFailure as failure:
        if failure.status == 404:
            return {}
        raise
    return {str(s.get("ServiceSubset", "")): float(s.get("Weight", 0)) for s in entry["Splits"]}


def applied_split(admin_url: str, service: str) -> dict[str, float]:
    """Subset -> percentage of ``service``'s split as one caller's Envoy applies it now (the
    catch-all route of its upstream route config); {} when the route sends everything to
    one cluster. Consul pushes a new splitter over xDS: this is where it lands."""
    dump = get_json(f"{admin_url}/config_dump?resource=dynamic_route_configs", timeout=5)
    for config in dump.get("configs", []):
        route_config = config.get("route_config", {})
        if route_config.get("name") != service:
            continue
        for host in route_config.get("virtual_hosts", []):
            for route in host.get("routes", []):
                weighted = route.get("route", {}).get("weighted_clusters")
                if route.get("match", {}).get("headers") or not weighted:
                    continue
                total = float(weighted.get("total_weight") or 100)
                return {
                    # Cluster names start with the subset: v2.recommendation.default...
                    str(c["name"]).split(".", 1)[0]: 100 * float(c.get("weight", 0)) / total
                    for c in weighted["clusters"]
                }
    return {}


@dataclass
class ReleaseState:
    subset: str
    weight: float | None
    instances: list[str]
    passing: int
    requests: int
    failures: int

    @property
    def error_ratio(self) -> str:
        return f"{self.failures / self.requests:.2%}" if self.requests else "-"


def _subset_of(version: str, rel: Releases) -> str:
    # The resolver's filters: the canary's exact version, stable for everything else.
    return rel.canary if version == rel.canary else rel.stable


def release_states(plan: MeshPlan, rel: Releases) -> list[ReleaseState]:
    split = current_split(plan, rel)
    states = {
        subset: ReleaseState(subset, split.get(subset) if split else None, [], 0, 0, 0)
        for subset in (rel.stable, rel.canary)
    }
    for entry in get_json(f"{plan.consul_url}/v1/health/service/{rel.service}",
                          token=plan.consul_token):
        service = entry["Service"]
        state = states[_subset_of(str((service.get("Meta") or {}).get("version", "")), rel)]
        state.instances.append(str(service["ID"]))
        if all(check["Status"] == "passing" for check in entry["Checks"]):
            state.passing += 1
    by_id = {i.instance_id: i for i in plan.instances() if i.service == rel.service}
    for state in states.values():
        for instance_id in state.instances:
            inst = by_id.get(instance_id)
            if inst is not None:
                requests, failures = answered(inst)
                state.requests += requests
                state.failures += failures
    return list(states.values())


def answered(inst: Instance, counters: Mapping[str, int] | None = None) -> tuple[int, int]:
    """(requests, failed) the instance answered through its sidecar since it started."""
    if counters is None:
        try:
            counters = envoy.stats(inst.admin_url, r"^cluster\.local_app\.grpc\.")
        except HTTPFailure:
            return 0, 0
    total = failures = 0
    for name, value in counters.items():
        match = _GRPC_STAT.match(name)
        if match is None:
            continue
        if match["what"] == "total":
            total += value
        elif match["what"] == "failure":
            failures += value
    return total, failures


def render(plan: MeshPlan) -> str:
    """The split of every service with a canary, for `make status`."""
    blocks = []
    for service in plan.topology.services.values():
        if service.canary is None:
            continue
        rel = _releases(service)
        try:
            states = release_states(plan, rel)
        except HTTPFailure as failure:
            blocks.append(f"canary {rel.service}: Consul does not answer ({failure})")
            continue
        rows = [
            [
                rel.service,
                f"{s.subset}{' (canary)' if s.subset == rel.canary else ''}",
                "-" if s.weight is None else f"{s.weight:g}%",
                f"{s.passing}/{len(s.instances)}",
                ", ".join(sorted(s.instances)) or "-",
                str(s.requests),
                str(s.failures),
                s.error_ratio,
            ]
            for s in states
        ]
        header = ["split of", "release", "weight", "passing", "instances", "answered",
                  "failed", "error ratio"]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in [header, ["-" * w for w in widths], *rows]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = mesh_parser("python -m tools.mesh.canary", __doc__, ["set", "show"])
    parser.add_argument("percent", nargs="?", help="for set: the canary's share, 0-100")
    parser.add_argument("--service", help="the service (default: the one with a canary)")
    args = parser.parse_args(argv)
    try:
        plan = plan_of(args)
        rel = releases(plan, args.service)
        if args.command == "set":
            if args.percent is None:
                parser.error("set needs the percentage: make canary PCT=10")
            percent = parse_percent(args.percent)
            set_split(plan, rel, percent)
            sys.stdout.write(
                f"{rel.service}: {percent}% to {rel.canary}, {100 - percent}% to {rel.stable} "
                f"(live; `make up` restores consul/config-entries/{rel.service}/"
                "service-splitter.hcl)\n"
            )
        sys.stdout.write(render(plan) + "\n")
    except (CanaryError, TopologyError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    except HTTPFailure as failure:
        sys.stderr.write(f"error: Consul at {args.address} does not answer ({failure}): "
                         "is the mesh up?\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
