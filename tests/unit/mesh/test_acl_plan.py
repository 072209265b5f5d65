"""What a mesh with Consul ACLs hands each part (tools/mesh/plan.py, tools/mesh/acl.py),
and that a mesh without them gets none of it. The mesh itself: tests/acl."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from services.kit.registration import load_mesh_settings
from tools.mesh import acl, control
from tools.mesh.observability import Observability, prometheus_config
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import TopologyError, load_topology


def plan_with(tmp_path: Path, *, on: bool) -> MeshPlan:
    return MeshPlan(topology=load_topology(), run_dir=tmp_path, acl=on)


def test_each_instance_and_its_sidecar_get_their_own_services_token_file(
    tmp_path: Path,
) -> None:
    plan = plan_with(tmp_path, on=True)
    payment = plan.topology.instance("payment-2")
    own = str(tmp_path / "acl" / "payment.token")
    env = control.service_env(plan, payment, "v")
    assert env["MESHMART_CONSUL_TOKEN_FILE"] == own
    mesh = load_mesh_settings(env)
    assert mesh is not None and mesh.token_file == own
    command = plan.sidecar_command(payment)
    shim, consul = command[: command.index("--")], command[command.index("--") + 1 :]
    assert shim[shim.index("--token-file") + 1] == own
    assert consul[consul.index("-token-file") + 1] == own
    consul_agent = next(p for p in control.programs(plan) if p.name == "consul").command
    assert consul_agent[consul_agent.index("-hcl") + 1] == acl.AGENT_ACL_HCL


def test_without_acls_nothing_carries_a_token(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, on=False)
    payment = plan.topology.instance("payment-2")
    assert "MESHMART_CONSUL_TOKEN_FILE" not in control.service_env(plan, payment, "v")
    assert not any("token" in part for part in plan.sidecar_command(payment))
    consul_agent = next(p for p in control.programs(plan) if p.name == "consul").command
    assert "-hcl" not in consul_agent
    assert plan.consul_token is None
    assert "authorization" not in prometheus_config(plan, "rules")


def test_prometheus_finds_and_scrapes_consul_with_its_own_token_file(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, on=True)
    config = yaml.safe_load(prometheus_config(plan, "rules"))
    own = {"credentials_file": str(tmp_path / "acl" / "prometheus.token")}
    for job in config["scrape_configs"]:
        assert all(sd["authorization"] == own for sd in job["consul_sd_configs"]), job
    [consul] = [job for job in config["scrape_configs"] if job["job_name"] == "consul"]
    assert consul["authorization"] == own  # /v1/agent/metrics


def test_the_tools_use_the_management_token_of_the_run_directory(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, on=True)
    assert plan.consul_token is None  # not bootstrapped yet
    (tmp_path / "acl").mkdir()
    (tmp_path / "acl" / "management.token").write_text("secret\n")
    assert plan.consul_token == "secret"
    # `make status` without the setting still reads a mesh that has ACLs.
    assert plan_with(tmp_path, on=False).consul_token == "secret"


def test_the_setting_comes_from_the_environment_then_topology_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = MeshPlan(topology=load_topology(), run_dir=tmp_path)
    monkeypatch.delenv("MESHMART_MESH_ACL", raising=False)
    assert plan.acl_enabled is plan.topology.rules.acl
    monkeypatch.setenv("MESHMART_MESH_ACL", "1")
    assert plan.acl_enabled and plan.base_env()["MESHMART_MESH_ACL"] == "1"
    monkeypatch.setenv("MESHMART_MESH_ACL", "0")
    assert not plan.acl_enabled


def test_acl_in_topology_toml_must_be_a_boolean(tmp_path: Path) -> None:
    bad = tmp_path / "topology.toml"
    bad.write_text('[mesh]\nacl = "yes"\n[services.a]\nport = 7100\nupstreams = []\n')
    with pytest.raises(TopologyError, match="acl must be true or false"):
        load_topology(bad)
    good = tmp_path / "good.toml"
    good.write_text("[mesh]\nacl = true\n[services.a]\nport = 7100\nupstreams = []\n")
    assert load_topology(good).rules.acl is True


def test_a_config_at_a_known_place_names_prometheuss_token_relative_to_itself(
    tmp_path: Path,
) -> None:
    """What the committed prometheus/prometheus.yml does: no checkout's absolute path."""
    plan = plan_with(tmp_path / "run", on=True)
    config = yaml.safe_load(prometheus_config(plan, "rules", config_dir=tmp_path / "prometheus"))
    for job in config["scrape_configs"]:
        for sd in job["consul_sd_configs"]:
            assert sd["authorization"] == {"credentials_file": "../run/acl/prometheus.token"}


@pytest.mark.parametrize("on", [True, False], ids=["acl", "no-acl"])
def test_up_says_how_to_log_the_consul_ui_in_read_only(tmp_path: Path, on: bool) -> None:
    """`make up`'s hints: the UI's URL, and with ACLs the command that shows the operator's
    token (read-only) for its "Log in"; without ACLs there is nothing to log in with."""
    plan = plan_with(tmp_path, on=on)
    hints = Observability(plan).hints()
    assert f"Consul UI          http://{plan.consul_http}/ui/" in hints
    log_in = f"Log in with the operator's token (reads all, writes nothing but its own " \
             f"registration): cat {tmp_path / 'acl' / 'operator.token'}"
    assert (log_in in hints) is on, hints
    # ... and read-only it is: every rule of the operator's own policy is a read.
    policies = re.findall(r'(?:policy|intentions|mesh|operator)\s*=\s*"(\w+)"',
                          acl.OPERATOR_RULES)
    assert policies and set(policies) == {"read"}
