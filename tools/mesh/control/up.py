"""`up`: start (or complete) a mesh and wait until it is ready; the code path of `make up`
and of the mesh tests.

``up`` is idempotent: on a running mesh it applies config changes, starts what is not
running and reports. Every wait has a deadline and watches the real state (Consul's
health with blocking queries, each sidecar's /ready); there are no fixed sleeps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xmlrpc.client
from typing import TextIO

from tools.mesh import acl, entries, hosts
from tools.mesh.control.components import components, edges
from tools.mesh.control.components import programs as mesh_programs
from tools.mesh.control.down import mesh_pids, remove_pods
from tools.mesh.control.errors import MeshError, Say, writer
from tools.mesh.control.state import check_states, instance_states
from tools.mesh.control.status import hints, render_status
from tools.mesh.http import HTTPFailure, get_json
from tools.mesh.plan import MeshPlan
from tools.mesh.pods import PodError
from tools.mesh.supervisor import Supervisor, render


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
    say = writer(out)
    deadline = time.monotonic() + timeout
    for tool in ("consul", "envoy", "supervisord"):
        if not (plan.bin / tool).exists():
            raise MeshError(f"{plan.bin / tool} is missing: run `make setup` first")
    for name in plan.missing_services():
        say(f"notice: services/{name}/ is not there yet: {name} is skipped")
    sup = Supervisor(plan)
    plan.logs_dir.mkdir(parents=True, exist_ok=True)
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    parts = components(plan)
    programs = mesh_programs(plan)
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
        for host in range(1, (plan.host_count if plan.pods else 1) + 1):
            shutil.rmtree(plan.consul_data_dir_of(host), ignore_errors=True)
        shutil.rmtree(plan.tokens_dir, ignore_errors=True)  # a new Consul: new tokens
        if plan.pods:
            make_pods(plan, say)
        if plan.pods and plan.host_count > 1:
            plan.hosts_record.write_text(f"{plan.host_count}\n")
        else:
            plan.hosts_record.unlink(missing_ok=True)
        _generate_keys(plan, say)
        plan.supervisor_conf.write_text(conf)
        say(f"starting supervisord ({plan.supervisor_conf})")
        sup.start_daemon()

    wait_for_consul(plan, deadline)
    if plan.acl_enabled and acl.switch_on(plan):
        say(f"Consul ACLs on (default deny): tokens in {plan.tokens_dir}/ (0600)")
    written = entries.apply(plan)
    say(f"applied {len(written)} config entries from {entries.ENTRIES_DIR}/")
    derived = [entry for part in parts for entry in part.config_entries()]
    if derived:
        entries.apply_derived(plan, derived)
        say(f"applied {len(derived)} config entries derived from the plan (its databases)")
    tcp = frozenset(e["Name"] for e in derived
                    if e["Kind"] == "service-defaults" and e.get("Protocol") == "tcp")
    problems = entries.check(plan, edges(plan), tcp) if check_entries else []
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
    for part in parts:
        for notice in part.wait_ready(deadline):
            say(notice)
    say("")
    say(render_status(plan))
    say("")
    say(hints(plan))
    for part in parts:
        if part_hints := part.hints():
            say(part_hints)


def make_pods(plan: MeshPlan, say: Say) -> None:
    """The bridge and a network namespace per instance (tools/mesh/pods.py), recorded in
    <run>/pods for `down`, before supervisord starts anything in them."""
    pods = plan.pod_addresses()
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    plan.pods_record.write_text("".join(f"{pod}\n" for pod in pods))
    try:
        plan.pod_network.create(pods)
    except PodError as error:
        remove_pods(plan)
        raise MeshError(f"cannot make the pods: {error}") from None
    say(f"{len(pods)} pods on bridge {plan.pod_network.bridge} "
        f"({plan.pod_network.subnet}, host side {plan.pod_network.gateway})")


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
    """Until the agent has elected itself leader and the Connect CA has a root. A Consul
    whose leader is none of this mesh's servers is another mesh's, answering where ours
    should (ours could not bind its ports, and exited): that fails at once."""
    ours = {plan.host_address(h) for h in range(1, hosts.servers(plan) + 1)}
    last = ""
    while time.monotonic() < deadline:
        try:
            leader = get_json(f"{plan.consul_url}/v1/status/leader", timeout=2)
            if leader and leader.rpartition(":")[0] not in ours:
                raise MeshError(
                    f"the Consul answering at {plan.consul_url} is not this mesh's: its "
                    f"leader is {leader}, not one of {sorted(ours)}. Another mesh or "
                    f"Consul runs on {plan.address}: stop it, or choose another address "
                    f"(make up ADDRESS=127.0.0.x); see {plan.logs_dir / 'consul.log'}"
                )
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
