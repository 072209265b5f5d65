"""Prometheus config and rules, checked by the pinned promtool (built by `make setup`):
the config every mesh writes is valid, and the recording and alert rules compute what
their unit tests (prometheus/tests/) say."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.mesh.nats import NatsSettings
from tools.mesh.observability import (
    APP_METRICS_PORT_OFFSET,
    PROMETHEUS_PORT,
    ZIPKIN_PORT,
    app_metrics_port,
    committed_prometheus_config,
    prometheus_config,
)
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import ROOT, load_table, load_topology

PROMTOOL = ROOT / ".venv" / "bin" / "promtool"
PROMETHEUS_DIR = ROOT / "prometheus"


def promtool(*args: str, cwd: Path = ROOT) -> str:
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: run `make setup`"
    result = subprocess.run(
        [str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_the_committed_config_is_what_the_mesh_generates() -> None:
    committed = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    assert committed == committed_prometheus_config(), (
        "prometheus/prometheus.yml is stale: run .venv/bin/python -m tools.mesh.observability"
    )


def write_token(path: Path) -> None:
    """A token file where a config names one (promtool checks that it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a-token\n")


def test_promtool_accepts_the_config_with_its_rules(tmp_path: Path) -> None:
    """The committed file with its rules, in a copy of the checkout's layout: with ACLs
    (topology.toml) it names Prometheus's token relative to itself, in the run
    directory, which a test must not touch (a developer's mesh may be running there)."""
    checkout = tmp_path / "checkout"
    shutil.copytree(PROMETHEUS_DIR, checkout / "prometheus")
    named = re.findall(r"credentials_file: (\S+)", (PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert bool(named) is load_topology().rules.acl
    assert set(named) <= {"../.run/acl/prometheus.token"}
    for token in set(named):
        write_token(checkout / "prometheus" / token)
    output = promtool("check", "config", "prometheus.yml", cwd=checkout / "prometheus")
    assert "SUCCESS: 1 rule files found" in output, output


@pytest.mark.parametrize("acl", [True, False], ids=["acl", "no-acl"])
def test_a_test_mesh_config_is_valid_too(tmp_path: Path, acl: bool) -> None:
    """The config of a mesh on another address, with the rules by absolute path, as
    `make up` and the mesh tests write it (with ACLs, Prometheus's token file is the
    run directory's)."""
    plan = MeshPlan(topology=load_topology(), address="127.0.0.2", run_dir=tmp_path, acl=acl)
    if (token := plan.token_file("prometheus")) is not None:
        write_token(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus_config(plan, rules_dir=PROMETHEUS_DIR / "rules"))
    output = promtool("check", "config", str(path))
    assert "127.0.0.2:8500" in path.read_text() and "SUCCESS" in output
    assert (f"credentials_file: {token}" in path.read_text()) is acl


def test_promtool_accepts_the_rules() -> None:
    rules = sorted(str(p) for p in (PROMETHEUS_DIR / "rules").glob("*.yml"))
    assert rules
    promtool("check", "rules", *rules)


def test_the_rule_unit_tests_pass() -> None:
    tests = sorted(str(p) for p in (PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert tests
    output = promtool("test", "rules", *tests)
    assert "SUCCESS" in output


@pytest.mark.parametrize("address", ["127.0.0.1"])
def test_every_metrics_port_is_free_of_every_other_mesh_port(address: str) -> None:
    topology = load_topology()
    rules = topology.rules
    instances = [*topology.instances(address), *topology.canary_instances(address)]
    taken: dict[int, str] = {
        PROMETHEUS_PORT: "prometheus", ZIPKIN_PORT: "zipkin",
        rules.consul_http_port: "consul", rules.consul_grpc_port: "consul grpc",
    }
    for inst in instances:
        taken |= {
            inst.port: inst.instance_id, inst.sidecar_port: f"{inst.instance_id} sidecar",
            inst.admin_port: f"{inst.instance_id} admin",
            inst.metrics_port: f"{inst.instance_id} sidecar metrics",
        }
        taken |= {p: f"{inst.instance_id} -> {u}" for u, p in inst.upstream_ports.items()}
    # [nats] client ports and [edge] ports live in ranges of their own (22000+, 31000+,
    # 19000/20000/21000): below the first metrics port or far above the last.
    first = rules.port_block + APP_METRICS_PORT_OFFSET
    for inst in instances:
        port = app_metrics_port(inst)
        assert port not in taken, f"{inst.instance_id} metrics {port} is {taken[port]}'s"
        assert first <= port < first + 100 < 32768
    # NATS clients: one port per instance slot from [nats] client_port_base.
    nats_base = load_table(topology.source, "nats", NatsSettings).client_port_base
    assert nats_base + 100 <= first
