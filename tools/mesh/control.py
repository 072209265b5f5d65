"""up / down / status of a mesh: the code path of `make up` and of the mesh tests.

``up`` is idempotent: on a running mesh it applies config changes, starts what is not
running and reports. Every wait has a deadline and watches the real state (Consul's
health with blocking queries, each sidecar's /ready); there are no fixed sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tools.mesh import canary, entries, envoy
from tools.mesh.edge.mesh import Edge
from tools.mesh.http import HTTPFailure, get_json, request
from tools.mesh.nats import Nats
from tools.mesh.plan import MESH_MARKER, MeshPlan
from tools.mesh.supervisor import Supervisor, render


class MeshError(Exception):
    """The mesh could not be brought up (the message says what and where to look)."""


Say = Callable[[str], None]


def _writer(stream: TextIO) -> Say:
    def say(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return say


# --------------------------------------------------------------------------- up


def up(
    plan: MeshPlan,
    *,
    timeout: float = 180.0,
    out: TextIO = sys.stdout,
    check_entries: bool = True,
) -> None:
    """Start (or complete) the mesh of ``plan`` and wait until it is ready.

    ``check_entries=False`` is for partial meshes (the benchmark runs two services), whose
    topology is a subset of the call graph the intentions describe."""
    say = _writer(out)
    deadline = time.monotonic() + timeout
    for tool in ("consul", "envoy", "supervisord"):
        if not (plan.bin / tool).exists():
            raise MeshError(f"{plan.bin / tool} is missing: run `make setup` first")
    for name in plan.missing_services():
        say(f"notice: services/{name}/ is not there yet: {name} is skipped")
    sup = Supervisor(plan)
    plan.logs_dir.mkdir(parents=True, exist_ok=True)
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    programs = plan.programs()
    conf = render(plan, programs)

    if sup.running():
        say(f"mesh at {plan.address} is already running (supervisord pid {sup.pid()})")
        plan.supervisor_conf.write_text(conf)
        changed = sup.update()
        if changed:
            say(f"supervisord: {changed}")
    else:
        leftovers = mesh_pids(plan.run_dir)
        if leftovers:
            raise MeshError(
                f"processes of a previous mesh in {plan.run_dir} are still alive (pids "
                f"{leftovers}) but supervisord is not: run `make down` first"
            )
        # Consul's state is derived (registrations come from the processes, entries from
        # consul/): start it empty so nothing stale from a crashed run survives.
        shutil.rmtree(plan.consul_data_dir, ignore_errors=True)
        _generate_keys(plan, say)
        plan.supervisor_conf.write_text(conf)
        say(f"starting supervisord ({plan.supervisor_conf})")
        sup.start_daemon()

    wait_for_consul(plan, deadline)
    written = entries.apply(plan)
    say(f"applied {len(written)} config entries from {entries.ENTRIES_DIR}/")
    problems = entries.check(plan) if check_entries else []
    if problems:
        raise MeshError("config entries disagree with topology.toml:\n  " + "\n  ".join(problems))

    # Services first (they register their sidecar), then the sidecars (their shim waits
    # for that registration).
    for program in programs:
        if program.group in ("services", "sidecars"):
            try:
                sup.start(f"{program.group}:{program.name}")
            except xmlrpc.client.Fault as fault:
                raise MeshError(
                    f"supervisord cannot start {program.name}: {fault.faultString}\n"
                    f"  command: {' '.join(program.command)}\n"
                    "  (the mesh stays up for inspection: `make status`, `make down`)"
                ) from None
    wait_ready(plan, deadline, say)
    observability = plan.observability()  # Prometheus, Zipkin (tools/mesh/observability.py)
    for notice in observability.wait_ready(deadline):
        say(notice)
    edge = Edge(plan)  # the edge gateway (tools/mesh/edge)
    edge.wait_ready(deadline)
    Nats(plan).wait_ready(deadline)  # the event bus (tools/mesh/nats.py)
    say("")
    say(render_status(plan))
    say("")
    say(hints(plan))
    say(observability.hints())
    if edge.runs:
        say(edge.hints())


def _generate_keys(plan: MeshPlan, say: Say) -> None:
    """The user service's JWT signing key and the JWKS the edge needs, if it has them."""
    if not (plan.root / "services" / "user" / "keys.py").exists():
        return
    env = {**os.environ, "MESHMART_RUN_DIR": str(plan.run_dir)}
    result = subprocess.run(
        [plan.python, "-m", "services.user.keys"],
        env=env, cwd=plan.root, capture_output=True, text=True, check=False, timeout=60,
    )
    if result.returncode != 0:
        raise MeshError(f"python -m services.user.keys failed:\n{result.stderr.strip()}")
    say(f"JWT keys ready in {plan.run_dir / 'keys'}")


def wait_for_consul(plan: MeshPlan, deadline: float) -> None:
    """Until the agent has elected itself leader and the Connect CA has a root."""
    last = ""
    while time.monotonic() < deadline:
        try:
            leader = get_json(f"{plan.consul_url}/v1/status/leader", timeout=2)
            if leader:
                roots = get_json(f"{plan.consul_url}/v1/connect/ca/roots", timeout=2)
                if roots.get("Roots"):
                    return
                last = "no Connect CA root yet"
            else:
                last = "no leader yet"
        except HTTPFailure as failure:
            last = str(failure)
        time.sleep(0.2)
    raise MeshError(
        f"Consul at {plan.consul_url} not ready before the deadline ({last}); see "
        f"{plan.logs_dir / 'consul.log'}"
    )


@dataclass(frozen=True)
class InstanceState:
    instance_id: str
    health: str  # passing / warning / critical / missing
    sidecar_health: str
    sidecar_ready: str  # LIVE / PRE_INITIALIZING / DOWN
    process: str  # supervisord state of the service process, e.g. RUNNING
    pid: int


def check_states(plan: MeshPlan, index: str = "0", wait: str = "") -> tuple[dict[str, str], str]:
    """Aggregated status per ServiceID from Consul, and the index for the next blocking
    query (with ``wait`` the call returns early only when something changes)."""
    query = {"index": index, "wait": wait} if wait else {}
    url = f"{plan.consul_url}/v1/health/state/any?{urllib.parse.urlencode(query)}"
    body, headers = request(url, timeout=10)
    worst: dict[str, str] = {}
    rank = {"passing": 0, "warning": 1, "critical": 2}
    for check in json.loads(body):
        sid = check.get("ServiceID") or ""
        if not sid:
            continue
        status = check["Status"]
        if rank.get(status, 2) >= rank.get(worst.get(sid, "passing"), 0):
            worst[sid] = status
    return worst, headers.get("X-Consul-Index", "0")


def instance_states(plan: MeshPlan, checks: dict[str, str] | None = None) -> list[InstanceState]:
    if checks is None:
        checks, _ = check_states(plan)
    sup = Supervisor(plan)
    procs = {p["name"]: p for p in sup.processes()} if sup.running() else {}
    states = []
    for inst in plan.instances():
        proc = procs.get(inst.instance_id, {})
        states.append(
            InstanceState(
                instance_id=inst.instance_id,
                health=checks.get(inst.instance_id, "missing"),
                sidecar_health=checks.get(inst.sidecar_id, "missing"),
                sidecar_ready=envoy.ready(inst.admin_url),
                process=str(proc.get("statename", "-")),
                pid=int(proc.get("pid", 0)),
            )
        )
    return states


def wait_ready(plan: MeshPlan, deadline: float, say: Say | None = None) -> None:
    """Until every instance and its sidecar pass their checks and every Envoy is LIVE."""
    sup = Supervisor(plan)
    index = "0"
    reported: set[str] = set()
    while True:
        checks, index = check_states(plan, index, wait="500ms")
        states = instance_states(plan, checks)
        not_ready = [
            s for s in states
            if s.health != "passing" or s.sidecar_health != "passing" or s.sidecar_ready != "LIVE"
        ]
        if not not_ready:
            return
        failed = [p for p in sup.processes() if p["statename"] in ("FATAL", "BACKOFF")]
        for proc in failed:
            if say and proc["name"] not in reported:
                reported.add(proc["name"])
                say(f"warning: {proc['name']} is {proc['statename']}:\n{_tail(plan, proc['name'])}")
        if time.monotonic() > deadline:
            lines = [
                f"  {s.instance_id}: health={s.health} sidecar={s.sidecar_health}/"
                f"{s.sidecar_ready} process={s.process}"
                for s in not_ready
            ]
            raise MeshError(
                "mesh not ready before the deadline:\n" + "\n".join(lines)
                + f"\nlogs: {plan.logs_dir}/<instance>.log and <instance>-sidecar.log"
            )


def _tail(plan: MeshPlan, name: str, lines: int = 15) -> str:
    path = plan.logs_dir / f"{name}.log"
    try:
        return "\n".join("    " + x for x in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "    (no log)"


# --------------------------------------------------------------------------- down


def mesh_pids(run_dir: Path) -> list[int]:
    """Pids of every live process carrying this mesh's marker in its environment."""
    marker = f"{MESH_MARKER}={run_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return sorted(pids)


def down(plan: MeshPlan, *, timeout: float = 60.0, out: TextIO = sys.stdout) -> list[int]:
    """Stop the mesh gracefully; returns the pids that had to be killed (ideally none)."""
    say = _writer(out)
    sup = Supervisor(plan)
    deadline = time.monotonic() + timeout
    if sup.running():
        # Services first: each turns NOT_SERVING, deregisters and drains while the
        # sidecars still carry its in-flight calls; then the sidecars; Consul last.
        say("stopping services (graceful: NOT_SERVING -> deregister -> drain)...")
        sup.stop_group("services")
        say("stopping sidecars...")
        sup.stop_group("sidecars")
        say("stopping consul...")
        sup.stop("infra:consul")
        daemon = sup.pid()
        sup.shutdown()
        while daemon and _alive(daemon) and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        say(f"no supervisord running for {plan.run_dir}")
    killed = []
    # Anything left (supervisord crashed, a stray child): TERM, then KILL at the deadline.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = mesh_pids(plan.run_dir)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        killed = left
        stop_at = min(deadline, time.monotonic() + 10)
        while mesh_pids(plan.run_dir) and time.monotonic() < stop_at:
            time.sleep(0.1)
    if killed:
        say(f"warning: had to signal leftover pids {killed}")
    left = mesh_pids(plan.run_dir)
    if left:
        raise MeshError(f"processes of the mesh survived SIGKILL: {left}")
    plan.supervisor_sock.unlink(missing_ok=True)
    say("mesh stopped; no process left")
    return killed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --------------------------------------------------------------------------- status


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, row)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def render_status(plan: MeshPlan) -> str:
    try:
        states = {s.instance_id: s for s in instance_states(plan)}
    except HTTPFailure as failure:
        return f"Consul at {plan.consul_url} does not answer ({failure}): is the mesh up?"
    red = plan.observability().render_status()  # rate / errors / p99 from Prometheus
    rows = []
    for inst in plan.instances():
        s = states[inst.instance_id]
        rows.append([
            inst.service,
            inst.instance_id,
            inst.grpc_target,
            s.health,
            f"{s.sidecar_ready} {inst.address}:{inst.sidecar_port} ({s.sidecar_health})",
            str(inst.admin_port),
            f"{s.process} {s.pid or ''}".strip(),
        ])
    table = _table(
        ["service", "instance", "address", "health", "sidecar (mTLS listener)", "admin", "process"],
        rows,
    )
    split = canary.render(plan)  # services with two releases: weights, error ratios
    bus = Nats(plan).render_status()  # the event bus: streams and consumers
    table = table + (f"\n\n{bus}" if bus else "")
    table += f"\n\n{red}" if red else ""
    return table + "\n\n" + render_circuits(plan) + (f"\n\n{split}" if split else "")


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
    return _table(
        ["caller", "upstream", "local listener", "healthy", "ejected", "active", "requests",
         "retries", "overflow", "circuit"],
        rows,
    )


def hints(plan: MeshPlan) -> str:
    a = plan.address
    lines = [
        f"Consul UI          http://{plan.consul_http}/ui/",
        f"health in Consul   curl -s 'http://{plan.consul_http}/v1/health/service/catalog?passing'",
    ]
    by_id = {i.instance_id: i for i in plan.instances()}
    if "catalog-1" in by_id:
        cat = by_id["catalog-1"]
        lines += [
            f"grpcurl (direct)   grpcurl -plaintext {cat.grpc_target} list",
            f"                   grpcurl -plaintext {cat.grpc_target} describe "
            "meshmart.catalog.v1.CatalogService",
            f"                   grpcurl -plaintext -d '{{\"page_size\": 2}}' {cat.grpc_target} "
            "meshmart.catalog.v1.CatalogService/ListProducts",
        ]
    if "cart-1" in by_id and "catalog" in by_id["cart-1"].upstream_ports:
        cart = by_id["cart-1"]
        lines += [
            "through the mesh   (as cart: cart-1's sidecar -> mTLS -> a catalog sidecar; the "
            "intention allows only CatalogService, so use the protoset, not reflection)",
            f"                   grpcurl -plaintext -protoset gen/descriptors/meshmart.protoset "
            f"-d '{{\"page_size\": 2}}' {cart.upstream_target('catalog')} "
            "meshmart.catalog.v1.CatalogService/ListProducts",
            f"sidecar stats      curl -s 'http://{a}:{cart.admin_port}/stats?filter=^cluster.catalog"
            ".*upstream_rq_(total|retry)'",
        ]
    lines += [
        "logs               make logs S=<service>     (service and sidecar logs, followed)",
        "status             make status               stop: make down",
    ]
    return "\n".join(lines)


def logs(plan: MeshPlan, service: str) -> None:
    """Follow the logs of every instance of ``service`` and of its sidecars (exec tail)."""
    if service not in plan.topology.services and service != "consul":
        raise MeshError(f"unknown service {service!r}; one of {', '.join(plan.topology.services)}")
    if service == "consul":
        files = [plan.logs_dir / "consul.log"]
    else:
        files = sorted(plan.logs_dir.glob(f"{service}-[0-9]*.log"))
    if not files:
        raise MeshError(f"no logs for {service} in {plan.logs_dir} (is the mesh up?)")
    os.execvp("tail", ["tail", "-n", "30", "-F", *map(str, files)])
