"""What our sidecar configuration costs beyond a bare pair of Envoys (issues 11 and 22).

    .venv/bin/python bench/sidecar_cost.py [--duration 5] [--rounds 2] [--rps N ...]
                                            [--variant ours --variant bare ...] [--xfcc]
                                            [--paired] [--beside-other-meshes]

The mesh of bench/mesh_overhead.py (Consul, catalog, cart as the caller, their two
sidecars on one Envoy worker each, the real config entries, Prometheus and Zipkin as in
`make up`), then catalog.GetProduct with ghz, direct and through one pair per variant:

Consul's sidecars, with what we configure on the path changed:
  tracing      the Zipkin tracer in each sidecar's bootstrap (envoy_tracing_json)
  prometheus   each sidecar's Prometheus listener (envoy_prometheus_bind_addr), scraped
  intention    catalog's intentions per gRPC method (l7) or as a plain allow (l4)
  protocol     catalog's protocol: grpc (ours), http2 (no grpc_stats/grpc_http1_bridge
               filters), tcp (no HTTP at all in the sidecars: an L4 pair)
  caller-http2 cart's sidecar speaks plain HTTP/2 to catalog (cart's service-defaults
               UpstreamConfig.Overrides Protocol): no gRPC filters on the caller's side
Two Envoys of static bootstraps, beside the mesh (bench/bare_pair.py):
  bare         the baseline of issue 22 goal 2: HTTP/2, router only, no TLS
  static...    the two sidecars' /config_dump with the committed entries ("ours") as
               static bootstraps (bench/static_sidecars.py), as they are ("static") or
               with one thing removed (static-no-tracing, static-no-rbac, ...: the
               ablation, static_sidecars.ABLATIONS)

A Consul variant is applied to this benchmark's own Consul only: the two registrations
are written again (the kit's own ``registration()`` with the sidecar settings changed),
the catalog entries are written through the HTTP API (the committed files are not
touched), then both sidecars are restarted (unless they already run that variant). What
the sidecars then got is read back from their /config_dump and printed (the filters on
the request path), and checked against the variant. The static pairs run from the start,
idle but for their turn.

Rounds interleave the variants (order reversed every other round); within a variant,
direct and the variant's path run back to back at each fixed rate (default the goal's,
bench/goals.toml [sidecar_pair]; 0: 40% of the mesh path's saturation), then the path at
saturation; direct at saturation once per round. The table gives what each path adds to
direct (per round against the direct run just before it, the median) and, with ``bare``
in the run, that over what the bare pair adds. ``--paired`` instead drives each variant's
path, the bare pair and direct at the same moments (three ghz at the first rate), with
the CPU per call of each pair's Envoys over the same seconds: on a loaded box the
variants met loads 20 apart in turn. ``--xfcc`` then measures catalog direct with and
without a header like the x-forwarded-client-cert its sidecar adds. It gives way to
another mesh (a Consul agent not its own), unless --beside-other-meshes: it does not
start, and stops between variants. Every process it starts is stopped by pid at the end,
also on failure (control.down, EnvoyPair.stop). Results: bench/TUNING.md d. and i.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.bare_pair import EnvoyPair
from bench.goals import GOALS
from bench.mesh_overhead import (
    CALL,
    PAYLOAD,
    Run,
    bare_pair,
    bench_topology,
    pair_ratio,
    summarize,
    tear_down,
)
from bench.static_sidecars import ABLATIONS, Leaf, static_pair
from harness.ghz import ghz
from harness.host import cpu_seconds, free_mesh_address
from services.kit.config import load_config
from services.kit.registration import load_mesh_settings, registration
from tools.mesh import control, envoy
from tools.mesh.http import HTTPFailure, get_json, register_service, request
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor
from tools.mesh.topology import Instance
from tools.mesh.version import source_version

CALLEE, CALLER = "catalog", "cart"
BASELINE = "bare"


@dataclass(frozen=True)
class Variant:
    name: str
    tracing: bool = True
    prometheus: bool = True
    intention: str = "l7"  # l7: per gRPC method (committed); l4: allow the source
    protocol: str = "grpc"  # grpc (committed), http2, tcp
    # The protocol cart's sidecar speaks to catalog (cart's service-defaults
    # UpstreamConfig.Overrides): "" the callee's (committed), http2: no gRPC filters on
    # the caller's side only.
    caller_protocol: str = ""
    # Not Consul's sidecars but two Envoys of static bootstraps (bench/bare_pair.py):
    # the measurement's baseline, "bare".
    static: bool = False

    def describe(self) -> str:
        if self.name == BASELINE:
            return "two Envoys, static bootstraps: HTTP/2, router only, no TLS"
        if self.static:
            return "ours as static bootstraps" + (
                f", then {self.name.removeprefix('static-')}" if self.name != "static" else "")
        return (f"tracing {'on' if self.tracing else 'off'}, prometheus "
                f"{'on' if self.prometheus else 'off'}, {self.intention} intention, "
                f"{self.protocol}"
                + (f", caller's side {self.caller_protocol}" if self.caller_protocol else ""))


VARIANTS = {
    v.name: v
    for v in (
        Variant("ours"),
        Variant("no-tracing", tracing=False),
        Variant("no-prometheus", prometheus=False),
        Variant("l4-intention", intention="l4"),
        Variant("http2", protocol="http2"),
        Variant("l7-minimal", tracing=False, prometheus=False, intention="l4", protocol="http2"),
        Variant("tcp", tracing=False, prometheus=False, intention="l4", protocol="tcp"),
        Variant("caller-http2", caller_protocol="http2"),
        Variant("bare", static=True),
        *(Variant(name, static=True) for name in ABLATIONS),
    )
}


# --------------------------------------------------------------------------- variants


class Switcher:
    """Applies a variant to the benchmark's mesh (its own Consul, its two sidecars)."""

    def __init__(self, plan: MeshPlan) -> None:
        self.plan = plan
        self.callee = plan.instance(f"{CALLEE}-1")
        self.caller = plan.instance(f"{CALLER}-1")
        # The committed entries as the bench's Consul has them (to derive and restore).
        self.original = {kind: self._entry(kind) for kind in
                         ("service-defaults", "service-router", "service-intentions")}
        self.caller_defaults = self._entry("service-defaults", CALLER)
        self.applied: Variant | None = None

    def _entry(self, kind: str, name: str = CALLEE) -> dict[str, Any]:
        body = get_json(f"{self.plan.consul_url}/v1/config/{kind}/{name}",
                        token=self.plan.consul_token)
        return {k: v for k, v in body.items()
                if k not in ("CreateIndex", "ModifyIndex", "Hash", "Partition", "Namespace")}

    def _put(self, entry: dict[str, Any]) -> None:
        request(f"{self.plan.consul_url}/v1/config", method="PUT",
                data=json.dumps(entry).encode(), timeout=10, token=self.plan.consul_token)

    def _delete(self, kind: str) -> None:
        request(f"{self.plan.consul_url}/v1/config/{kind}/{CALLEE}", method="DELETE",
                timeout=10, token=self.plan.consul_token)

    def intentions(self, level: str) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(json.dumps(self.original["service-intentions"]))
        if level == "l4":
            for source in entry["Sources"]:
                source.pop("Permissions", None)
                source["Action"] = "allow"
        return entry

    def apply(self, variant: Variant) -> None:
        """The variant on both sidecars (restarted), unless they already run it."""
        if variant == self.applied:
            return
        self.applied = None
        # Order matters: a router needs an L7 protocol, an L4 service no L7 intentions.
        defaults = {**self.original["service-defaults"], "Protocol": variant.protocol}
        if variant.protocol == "tcp":
            self._put(self.intentions("l4"))
            self._delete("service-router")
            self._put(defaults)
        else:
            self._put(defaults)
            self._put(self.original["service-router"])
            self._put(self.intentions(variant.intention))
        self._put(self.caller_entry(variant))
        for inst in (self.callee, self.caller):
            self._register(inst, variant)
        sup = Supervisor(self.plan)
        for inst in (self.callee, self.caller):
            sup.stop(f"sidecars:{inst.instance_id}-sidecar")
        for inst in (self.callee, self.caller):
            sup.start(f"sidecars:{inst.instance_id}-sidecar")
        deadline = time.monotonic() + 90
        control.wait_ready(self.plan, deadline)
        self._wait_for_xds(variant, deadline)
        self.applied = variant

    def _register(self, inst: Instance, variant: Variant) -> None:
        register_service(self.plan.consul_url, registration_body(self.plan, inst, variant),
                         timeout=10, token_file=self.plan.token_file(inst.service))

    def _wait_for_xds(self, variant: Variant, deadline: float) -> None:
        """Until both sidecars' listeners say what the variant asked for."""
        while True:
            path = self.path_filters()
            problems = expectation_problems(variant, path)
            if not problems:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"sidecars never matched {variant.name}: {problems}")
            time.sleep(0.5)

    def path_filters(self) -> dict[str, dict[str, Any]]:
        """What is on the request path: cart's outbound listener for catalog and
        catalog's public listener, plus each sidecar's bootstrap tracing and stats."""
        out = {}
        for inst, prefix in ((self.caller, f"{CALLEE}:"), (self.callee, "public_listener:")):
            dump = get_json(f"{inst.admin_url}/config_dump", timeout=10)
            out[inst.instance_id] = summarize_dump(dump, prefix)
        return out

    def caller_entry(self, variant: Variant) -> dict[str, Any]:
        """cart's service-defaults, with the variant's protocol towards catalog."""
        entry: dict[str, Any] = json.loads(json.dumps(self.caller_defaults))
        if variant.caller_protocol:
            upstreams = entry.setdefault("UpstreamConfig", {})
            upstreams["Overrides"] = [{"Name": CALLEE, "Protocol": variant.caller_protocol}]
        return entry

    def restore(self) -> None:
        """The committed entries back (the mesh is torn down next anyway)."""
        self._put(self.caller_defaults)
        self._put(self.original["service-defaults"])
        self._put(self.original["service-router"])
        self._put(self.original["service-intentions"])


def registration_body(plan: MeshPlan, inst: Instance, variant: Variant) -> dict[str, Any]:
    """The instance's registration as the kit writes it (services/kit/registration.py),
    with the sidecar settings of the variant; the process itself is not restarted."""
    env = control.service_env(plan, inst, source_version(plan.root))
    mesh = load_mesh_settings(env)
    if mesh is None:
        raise RuntimeError(f"{inst.instance_id} has no mesh settings")
    mesh = replace(mesh,
                   zipkin_url=mesh.zipkin_url if variant.tracing else None,
                   metrics_addr=mesh.metrics_addr if variant.prometheus else None)
    return registration(load_config(inst.service, env), mesh, int(env["MESHMART_METRICS_PORT"]))


def summarize_dump(dump: dict[str, Any], listener_prefix: str) -> dict[str, Any]:
    """One sidecar's /config_dump reduced to what a request meets: the listener's network
    filters, its HTTP filters and connection manager options, the bootstrap tracer and
    stats settings."""
    summary: dict[str, Any] = {"listener": None, "static_listeners": []}
    for config in dump.get("configs", []):
        kind = config.get("@type", "")
        if kind.endswith("BootstrapConfigDump"):
            boot = config["bootstrap"]
            summary["bootstrap_tracer"] = (boot.get("tracing") or {}).get("http", {}).get("name")
            summary["stats_tags"] = len((boot.get("stats_config") or {}).get("stats_tags", []))
            summary["stats_sinks"] = [s.get("name") for s in boot.get("stats_sinks", [])]
        elif kind.endswith("ListenersConfigDump"):
            summary["static_listeners"] = [
                s["listener"]["name"] for s in config.get("static_listeners", [])
            ]
            for item in config.get("dynamic_listeners", []):
                listener = (item.get("active_state") or {}).get("listener") or {}
                if listener.get("name", "").startswith(listener_prefix):
                    summary["listener"] = listener["name"]
                    summary.update(_chain(listener))
    return summary


def _chain(listener: dict[str, Any]) -> dict[str, Any]:
    chains = listener.get("filter_chains", [])
    out: dict[str, Any] = {
        "listener_filters": [f["name"] for f in listener.get("listener_filters", [])],
        "tls": any("transport_socket" in c for c in chains),
        "network_filters": [], "http_filters": [], "hcm": {},
    }
    for chain in chains:
        for f in chain.get("filters", []):
            out["network_filters"].append(f["name"])
            if f["name"] == "envoy.filters.network.http_connection_manager":
                hcm = f["typed_config"]
                out["http_filters"] = [h["name"] for h in hcm.get("http_filters", [])]
                out["hcm"] = {k: v for k, v in hcm.items()
                              if k not in ("http_filters", "@type", "route_config", "rds")}
                rbac = [h for h in hcm.get("http_filters", [])
                        if h["name"] == "envoy.filters.http.rbac"]
                out["rbac_matches_paths"] = any(
                    key in json.dumps(rbac) for key in ('"url_path"', '":path"'))
            if f["name"] == "envoy.filters.network.rbac":
                out["rbac_matches_paths"] = False
    return out


def expectation_problems(variant: Variant, path: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for inst_id, s in path.items():
        if s["listener"] is None:
            problems.append(f"{inst_id}: no listener yet")
            continue
        has_tracer = s.get("bootstrap_tracer") is not None
        if has_tracer != variant.tracing:
            problems.append(f"{inst_id}: bootstrap tracer {s.get('bootstrap_tracer')}")
        http = s["http_filters"]
        protocol = (variant.caller_protocol or variant.protocol
                    if inst_id == f"{CALLER}-1" else variant.protocol)
        if protocol == "tcp" and http:
            problems.append(f"{inst_id}: HTTP filters on a tcp path")
        if protocol == "grpc" and "envoy.filters.http.grpc_stats" not in http:
            problems.append(f"{inst_id}: no grpc_stats on a grpc path")
        if protocol == "http2" and ("envoy.filters.http.grpc_stats" in http or not http):
            problems.append(f"{inst_id}: not an http2 path: {http}")
    callee = path[f"{CALLEE}-1"]
    if callee["listener"] is not None:
        wants_paths = variant.intention == "l7" and variant.protocol != "tcp"
        if bool(callee.get("rbac_matches_paths")) != wants_paths:
            problems.append(f"{CALLEE}-1: RBAC matches paths: {callee.get('rbac_matches_paths')}")
        prometheus = any("prometheus" in name for name in callee["static_listeners"])
        if variant.prometheus != prometheus:
            problems.append(f"{CALLEE}-1: static listeners {callee['static_listeners']}")
    return problems


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class VariantRound:
    variant: str
    at_rate: dict[int, tuple[Run, Run]]  # rate -> (direct, the variant's path), back to back
    mesh_sat: Run  # at saturation
    direct_sat: Run  # this round's direct saturation
    tracing_stats: dict[str, int]
    # rate -> CPU per call in us: (the pair's two Envoys, catalog on the variant's path,
    # catalog direct), from /proc over the same runs
    cpu_us: dict[int, tuple[float, float, float]]


class AnotherMesh(Exception):
    """Another Consul agent runs on the machine (a test mesh, CI): stop measuring."""


def other_consul_agents(run_dir: Path | None) -> list[int]:
    """Pids of Consul agents that are not this benchmark's (its data dir is in run_dir;
    None: every agent)."""
    ours = str(run_dir).encode() if run_dir is not None else None
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(args) > 1 and args[0].endswith(b"consul") and args[1] == b"agent" and not (
            ours is not None and any(a.startswith(ours) for a in args)
        ):
            pids.append(int(proc.name))
    return pids


def xfcc_like(plan: MeshPlan) -> str:
    """A header the size and shape of the x-forwarded-client-cert that catalog's sidecar
    adds to every request from cart (Consul sets forward_client_cert_details APPEND_FORWARD
    with cert, chain, subject, URI and DNS): built from cart's real leaf certificate."""
    leaf = get_json(f"{plan.consul_url}/v1/agent/connect/ca/leaf/{CALLER}", timeout=10,
                    token=plan.consul_token)
    pem = leaf["CertPEM"]
    der = ssl.PEM_cert_to_DER_cert(pem.split("-----END CERTIFICATE-----")[0]
                                   + "-----END CERTIFICATE-----\n")
    encoded = urllib.parse.quote(pem, safe="")
    callee_uri = leaf["ServiceURI"].rsplit("/", 1)[0] + f"/{CALLEE}"
    return (f"By={callee_uri};Hash={hashlib.sha256(der).hexdigest()};Cert=\"{encoded}\";"
            f"Chain=\"{encoded}\";Subject=\"\";URI={leaf['ServiceURI']}")


def measure_xfcc(switcher: Switcher, *, rounds: int, duration: int, rps: int) -> str:
    """Direct to catalog with and without an XFCC-sized header, interleaved: what the
    header the public listener adds costs the Python process (no sidecar involved)."""
    header = {"x-forwarded-client-cert": xfcc_like(switcher.plan)}
    direct = switcher.callee.grpc_target
    runs: dict[str, list[Run]] = {"direct": [], "direct + XFCC": []}
    for number in range(rounds):
        pairs = [("direct", None), ("direct + XFCC", header)]
        for name, metadata in pairs if number % 2 == 0 else pairs[::-1]:
            run = summarize(name, f"{rps} rps", ghz(direct, CALL, PAYLOAD, rps=rps,
                                                     concurrency=16, seconds=duration,
                                                     metadata=metadata))
            runs[name].append(run)
            print(f"   {name:<14} r{number + 1}: p50/p90/p99 {run.p50_ms:.2f}/{run.p90_ms:.2f}/"
                  f"{run.p99_ms:.2f} ms  err {run.errors}  load {os.getloadavg()[0]:.1f}",
                  flush=True)
    lines = [f"| direct to catalog, {rps} RPC/s, medians of {rounds} rounds "
             f"(header {len(header['x-forwarded-client-cert'])} bytes) | p50 / p90 / p99 ms |",
             "|---|---|"]
    for name, rs in runs.items():
        lines.append(f"| {name} | " + " / ".join(
            f"{statistics.median(getattr(r, f) for r in rs):.2f}"
            for f in ("p50_ms", "p90_ms", "p99_ms")) + " |")
    return "\n".join(lines)


def tracing_counters(admin_url: str) -> dict[str, int]:
    return {k: v for k, v in envoy.stats(admin_url, r"tracing").items() if v}


def measure(switcher: Switcher, variants: list[Variant], pairs: dict[str, EnvoyPair], *,
            rounds: int, duration: int, rates: list[int],
            beside_others: bool = False) -> list[VariantRound]:
    direct = switcher.callee.grpc_target
    mesh = switcher.caller.upstream_target(CALLEE)
    results = []
    seen: set[str] = set()
    for number in range(rounds):
        order = variants if number % 2 == 0 else list(reversed(variants))
        direct_sat = summarize("direct", "saturation", ghz(direct, CALL, PAYLOAD, concurrency=32,
                                                          seconds=duration))
        print(f"round {number + 1}: direct at saturation {direct_sat.rps:.0f} RPC/s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
        for variant in order:
            # Two meshes on two cores measure each other, and this one would disturb the
            # other's tests: give way.
            if (others := other_consul_agents(switcher.plan.run_dir)) and not beside_others:
                raise AnotherMesh(f"another mesh started (consul agent pids {others}): "
                                  "stopping; rerun when the machine is quiet")
            if variant.static:
                target = pairs[variant.name].target
            else:
                switcher.apply(variant)
                target = mesh
            if variant.name not in seen:
                seen.add(variant.name)
                print(f"\n-- {variant.name} ({variant.describe()}): the request path")
                if not variant.static:
                    for inst_id, summary in switcher.path_filters().items():
                        print(f"   {inst_id}: {json.dumps(summary, sort_keys=True)}")
            ghz(target, CALL, PAYLOAD, rps=rates[0], concurrency=8, seconds=2)  # warm up
            at_rate, cpu_us = {}, {}
            envoys = pairs[variant.name].pids() if variant.static else sidecar_pids(switcher)
            app = [catalog_pid(switcher)]
            for rps in rates:
                before = cpu(app)
                report = ghz(direct, CALL, PAYLOAD, rps=rps, concurrency=16, seconds=duration)
                d = summarize("direct", f"{rps} rps", report)
                app_direct = (cpu(app) - before) / report["count"] * 1e6
                before, before_envoys = cpu(app), cpu(envoys)
                report = ghz(target, CALL, PAYLOAD, rps=rps, concurrency=16, seconds=duration)
                m = summarize(variant.name, f"{rps} rps", report)
                cpu_us[rps] = ((cpu(envoys) - before_envoys) / report["count"] * 1e6,
                               (cpu(app) - before) / report["count"] * 1e6, app_direct)
                at_rate[rps] = (d, m)
            sat = summarize(variant.name, "saturation", ghz(target, CALL, PAYLOAD,
                                                            concurrency=32, seconds=duration))
            counters = {} if variant.static else tracing_counters(switcher.callee.admin_url)
            results.append(VariantRound(variant.name, at_rate, sat, direct_sat, counters, cpu_us))
            line = "  ".join(
                f"@{rps}: direct {d.p50_ms:.2f}/{d.p99_ms:.2f} path {m.p50_ms:.2f}/"
                f"{m.p99_ms:.2f} ms ({m.rps:.0f}/s, err {d.errors}/{m.errors}; CPU us/call "
                f"Envoys {cpu_us[rps][0]:.0f}, catalog {cpu_us[rps][1]:.0f} vs direct "
                f"{cpu_us[rps][2]:.0f})" for rps, (d, m) in at_rate.items())
            print(f"   {variant.name:<14} r{number + 1} p50/p99 {line}  saturation "
                  f"{sat.rps:.0f} RPC/s (err {sat.errors})  load {os.getloadavg()[0]:.1f}",
                  flush=True)
            if counters:
                print(f"      catalog sidecar tracing counters: {counters}")
    return results


def cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def sidecar_pids(switcher: Switcher) -> list[int]:
    names = {f"{inst.instance_id}-sidecar" for inst in (switcher.caller, switcher.callee)}
    return [int(p["pid"]) for p in Supervisor(switcher.plan).processes()
            if p["group"] == "sidecars" and p["name"] in names]


def catalog_pid(switcher: Switcher) -> int:
    return next(int(p["pid"]) for p in Supervisor(switcher.plan).processes()
                if p["group"] == "services" and p["name"] == switcher.callee.instance_id)


def added(rounds: list[VariantRound], rps: int, field: str) -> float:
    """What a variant's path adds to direct at ``rps``: per round its run minus the direct
    run just before it, the median over rounds."""
    return float(statistics.median(
        getattr(r.at_rate[rps][1], field) - getattr(r.at_rate[rps][0], field) for r in rounds))


def report(results: list[VariantRound], variants: list[Variant], rates: list[int]) -> str:
    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    by_name = {v.name: [r for r in results if r.variant == v.name] for v in variants}
    baseline = by_name.get(BASELINE) or []
    per_rate = " ".join(f"@{rps}: p50 / p99 ms (+added p50 / p99)" for rps in rates)
    lines = [
        f"| medians of {len(results) // max(1, len(variants))} rounds | {per_rate} | "
        + (f"added over {BASELINE}'s, p50 / p99 " + ", ".join(f"@{rps}" for rps in rates) + " | "
           if baseline else "")
        + "saturation, / direct | CPU us per call: both Envoys; catalog (direct) "
        + ", ".join(f"@{rps}" for rps in rates) + " |",
        "|---|---|" + ("---|" if baseline else "") + "---|---|",
    ]
    for variant in variants:
        rs = by_name[variant.name]
        if not rs:
            continue
        cells = []
        ratios = []
        for rps in rates:
            p50, p99 = (med([getattr(r.at_rate[rps][1], f) for r in rs])
                        for f in ("p50_ms", "p99_ms"))
            a50, a99 = (added(rs, rps, f) for f in ("p50_ms", "p99_ms"))
            cells.append(f"{p50:.2f} / {p99:.2f} ({a50:+.2f} / {a99:+.2f})")
            if baseline:
                b50, b99 = (added(baseline, rps, f) for f in ("p50_ms", "p99_ms"))
                ratios.append(f"{pair_ratio(a50, b50):.2f}x / {pair_ratio(a99, b99):.2f}x")
        sat = med([r.mesh_sat.rps for r in rs])
        ratio = med([r.mesh_sat.rps / r.direct_sat.rps for r in rs])
        cpus = "; ".join(
            f"{med([r.cpu_us[rps][0] for r in rs]):.0f}; {med([r.cpu_us[rps][1] for r in rs]):.0f}"
            f" ({med([r.cpu_us[rps][2] for r in rs]):.0f})" for rps in rates)
        lines.append(f"| {variant.name} ({variant.describe()}) | " + "; ".join(cells) + " | "
                     + ("; ".join(ratios) + " | " if baseline else "")
                     + f"{sat:,.0f} RPC/s, {ratio:.2f}x | {cpus} |")
    direct = [r.at_rate[rps][0] for r in results for rps in rates]
    lines.append("")
    lines.append("direct at the fixed rates, p50 / p99 ms (every run): " + "; ".join(
        f"@{rps}: {med([r.p50_ms for r in direct if r.mode == f'{rps} rps']):.2f} / "
        f"{med([r.p99_ms for r in direct if r.mode == f'{rps} rps']):.2f}" for rps in rates))
    return "\n".join(lines)


@dataclass(frozen=True)
class PairedRound:
    """One variant's path, the bare pair and direct, driven at the same time."""

    variant: str
    direct: Run
    bare: Run
    path: Run
    bare_cpu_us: float  # the bare pair's two Envoys, CPU per call, over the same seconds
    path_cpu_us: float  # the variant's two Envoys


def drive(runs: dict[str, tuple[Run, float]], name: str, target: str, pids: list[int],
          rps: int, duration: int, number: int) -> None:
    """One ghz run into ``runs[name]``, with the CPU per call of ``pids`` over it."""
    before = cpu(pids)
    report = ghz(target, CALL, PAYLOAD, rps=rps, concurrency=16, seconds=duration)
    runs[name] = (summarize(name, f"{rps} rps", report, number),
                  (cpu(pids) - before) / report["count"] * 1e6)


def measure_paired(switcher: Switcher, variants: list[Variant], pairs: dict[str, EnvoyPair],
                   *, rounds: int, duration: int, rps: int) -> list[PairedRound]:
    """Each variant's path, the bare pair and direct at the same moments: three ghz at
    ``rps`` each, started together, so all three meet the same load of a shared box (in
    turn they met loads 20 apart); the Envoys' CPU per call over the same seconds."""
    direct = switcher.callee.grpc_target
    bare = pairs[BASELINE]
    results = []
    for number in range(rounds):
        order = variants if number % 2 == 0 else list(reversed(variants))
        for variant in order:
            if variant.static:
                target, envoys = pairs[variant.name].target, pairs[variant.name].pids()
            else:
                switcher.apply(variant)
                target, envoys = switcher.caller.upstream_target(CALLEE), sidecar_pids(switcher)
            ghz(target, CALL, PAYLOAD, rps=rps, concurrency=8, seconds=2)  # warm up
            runs: dict[str, tuple[Run, float]] = {}
            threads = [threading.Thread(target=drive, args=(runs, name, path, pids, rps,
                                                            duration, number))
                       for name, path, pids in (("direct", direct, []),
                                                (BASELINE, bare.target, bare.pids()),
                                                ("path", target, envoys))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            r = PairedRound(variant.name, runs["direct"][0], runs[BASELINE][0], runs["path"][0],
                            runs[BASELINE][1], runs["path"][1])
            results.append(r)
            print(f"   {variant.name:<26} r{number + 1} p50/p99 direct {r.direct.p50_ms:.2f}/"
                  f"{r.direct.p99_ms:.2f} bare {r.bare.p50_ms:.2f}/{r.bare.p99_ms:.2f} path "
                  f"{r.path.p50_ms:.2f}/{r.path.p99_ms:.2f} ms; Envoys CPU us/call bare "
                  f"{r.bare_cpu_us:.0f} path {r.path_cpu_us:.0f}; err {r.path.errors}  load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    return results


def report_paired(results: list[PairedRound], variants: list[Variant], rps: int) -> str:
    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    lines = [f"| {rps} RPC/s per path, each variant at the same time as the bare pair and "
             "direct; medians of the rounds | added p50 / p99 ms | the bare pair's, same "
             "moments | added over bare's p50 / p99 | Envoys CPU us per call: variant, bare "
             "| variant - bare, per round |", "|---|---|---|---|---|---|"]
    for variant in variants:
        rs = [r for r in results if r.variant == variant.name]
        if not rs:
            continue
        a50, a99, b50, b99 = (med([getattr(getattr(r, path), f) - getattr(r.direct, f)
                                   for r in rs])
                              for path, f in (("path", "p50_ms"), ("path", "p99_ms"),
                                              ("bare", "p50_ms"), ("bare", "p99_ms")))
        diffs = [r.path_cpu_us - r.bare_cpu_us for r in rs]
        lines.append(
            f"| {variant.name} | {a50:+.2f} / {a99:+.2f} | {b50:+.2f} / {b99:+.2f} | "
            f"{pair_ratio(a50, b50):.2f}x / {pair_ratio(a99, b99):.2f}x | "
            f"{med([r.path_cpu_us for r in rs]):.0f}, {med([r.bare_cpu_us for r in rs]):.0f} | "
            f"{med(diffs):+.0f} ({', '.join(f'{d:+.0f}' for d in diffs)}) |")
    return "\n".join(lines)


def static_pairs(switcher: Switcher, names: list[str]) -> dict[str, EnvoyPair]:
    """The pair as Consul configures it with the committed entries ("ours"), copied into
    static bootstraps (bench/static_sidecars.py), once per ablation in ``names``."""
    if not names:
        return {}
    switcher.apply(VARIANTS["ours"])
    plan = switcher.plan
    dumps = [get_json(f"{inst.admin_url}/config_dump?include_eds", timeout=10)
             for inst in (switcher.caller, switcher.callee)]
    leaves = []
    for service in (CALLER, CALLEE):
        leaf = get_json(f"{plan.consul_url}/v1/agent/connect/ca/leaf/{service}", timeout=10,
                        token=plan.consul_token)
        leaves.append(Leaf(leaf["CertPEM"], leaf["PrivateKeyPEM"]))
    run_dir = plan.run_dir / "static-pairs"
    run_dir.mkdir(parents=True, exist_ok=True)
    for inst, dump in zip((switcher.caller, switcher.callee), dumps, strict=True):
        (run_dir / f"{inst.instance_id}.config_dump.json").write_text(json.dumps(dump, indent=1))
    caller_dump, callee_dump = dumps
    caller_leaf, callee_leaf = leaves
    return {name: static_pair(name, run_dir, plan.address, caller_dump, callee_dump, caller_leaf,
                              callee_leaf, upstream=CALLEE, change=ABLATIONS[name])
            for name in names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per ghz run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rps", type=int, action="append",
                        help=f"fixed rates (default {list(GOALS.sidecar_rates)}; 0: 40%% of "
                             "the mesh path's saturation)")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS),
                        help="variants to run (default: all)")
    parser.add_argument("--xfcc", action="store_true",
                        help="also: direct with and without an XFCC-sized header")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--paired", action="store_true",
                        help="each variant at the same time as the bare pair and direct (the "
                             "first --rps each), with the Envoys' CPU per call: for a loaded box")
    parser.add_argument("--beside-other-meshes", action="store_true",
                        help="run even where another mesh runs (a shared box: every figure "
                             "is then noisier, the ratios of one run still compare)")
    args = parser.parse_args()
    variants = [VARIANTS[name] for name in (args.variant or list(VARIANTS))]
    if args.paired and VARIANTS[BASELINE] not in variants:
        variants.append(VARIANTS[BASELINE])
    if others := other_consul_agents(None):
        if not args.beside_other_meshes:
            print(f"another mesh runs (consul agent pids {others}): not starting",
                  file=sys.stderr)
            return 1
        print(f"beside other meshes (consul agent pids {others})", flush=True)
    run_dir = Path(tempfile.mkdtemp(prefix="meshmart-sidecar-cost-"))
    topology = bench_topology()
    address = free_mesh_address(topology, first=5)
    plan = MeshPlan(topology=topology, address=address, run_dir=run_dir, envoy_concurrency=1,
                    extra_env={"MESHMART_LOG_LEVEL": "WARNING"})
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    print(f"mesh for the benchmark on {plan.address}, run dir {run_dir}; cores: "
          f"{os.cpu_count()}; load average {load_start:.1f}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    switcher: Switcher | None = None
    pairs: dict[str, EnvoyPair] = {}
    try:
        control.up(plan, out=sys.stderr, check_entries=False)
        switcher = Switcher(plan)
        mesh = switcher.caller.upstream_target(CALLEE)
        if VARIANTS[BASELINE] in variants:
            pairs[BASELINE] = bare_pair(plan)
        pairs.update(static_pairs(switcher, [v.name for v in variants
                                             if v.static and v.name in ABLATIONS]))
        for pair in pairs.values():
            pair.start()
        # Zipkin's JVM and Prometheus are still starting: let their start-up pass under
        # load on both paths before anything counts.
        for target in (switcher.callee.grpc_target, mesh):
            ghz(target, CALL, PAYLOAD, rps=300, concurrency=8, seconds=2 * args.duration)
        rates = args.rps or list(GOALS.sidecar_rates)
        if 0 in rates:
            sat = summarize("mesh", "saturation", ghz(mesh, CALL, PAYLOAD, concurrency=32,
                                                      seconds=args.duration)).rps
            light = int(round(0.4 * sat, -1))
            rates = [light if rps == 0 else rps for rps in rates]
            print(f"mesh path at saturation {sat:.0f} RPC/s: fixed rate {light} RPC/s (40%)")
        if args.paired:
            compared = [v for v in variants if v.name != BASELINE]
            paired = measure_paired(switcher, compared, pairs, rounds=args.rounds,
                                    duration=args.duration, rps=rates[0])
            print(f"\n{report_paired(paired, compared, rates[0])}\n")
        else:
            results = measure(switcher, variants, pairs, rounds=args.rounds,
                              duration=args.duration, rates=rates,
                              beside_others=args.beside_other_meshes)
            print(f"\n{report(results, variants, rates)}\n")
        if args.xfcc:
            table = measure_xfcc(switcher, rounds=args.rounds, duration=args.duration,
                                 rps=rates[0])
            print(f"\n{table}\n")
        print(f"took {time.monotonic() - started:.0f}s; load average at the start "
              f"{load_start:.1f}, at the end {os.getloadavg()[0]:.1f}")
    except AnotherMesh as stop:
        print(stop, file=sys.stderr)
        return 1
    finally:
        for pair in pairs.values():
            pair.stop()
        if switcher is not None:
            try:
                switcher.restore()
            except HTTPFailure as failure:
                print(f"could not restore the entries ({failure}); tearing down anyway",
                      file=sys.stderr)
        tear_down(plan, run_dir, keep_logs=args.keep_logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
