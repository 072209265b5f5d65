"""The mesh's port plan and process plan derive from topology.toml by fixed rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.mesh import control
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import render
from tools.mesh.topology import TopologyError, load_topology


def test_every_derived_port_of_the_real_topology_is_distinct() -> None:
    topo = load_topology()  # raises TopologyError on any collision
    ports = [
        p
        for i in topo.instances()
        for p in (i.port, i.sidecar_port, i.admin_port, i.metrics_port, *i.upstream_ports.values())
    ]
    assert len(ports) == len(set(ports))


def test_ports_follow_the_documented_rules() -> None:
    order = load_topology().instance("order-1")
    assert order.port == 7150
    assert order.sidecar_port == 21150
    assert order.admin_port == 19150
    assert order.metrics_port == 20150
    # 30000 + (7150 - 7100) * 10 + payment's slot (7140 -> 4)
    assert order.upstream_target("payment") == "127.0.0.1:30504"


def test_a_mesh_on_another_address_keeps_the_ports_and_changes_the_envoy_base_id() -> None:
    topo = load_topology()
    here, there = topo.instance("catalog-2"), topo.instance("catalog-2", "127.0.0.2")
    assert (here.port, here.sidecar_port) == (there.port, there.sidecar_port)
    assert there.upstream_ports == here.upstream_ports
    assert here.base_id != there.base_id


def test_a_port_outside_the_block_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "topology.toml"
    bad.write_text("[services.a]\nport = 7305\ninstances = 1\nupstreams = []\n")
    with pytest.raises(TopologyError, match=r"services\.a\.port"):
        load_topology(bad)


def test_an_unknown_upstream_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "topology.toml"
    bad.write_text('[services.a]\nport = 7100\nupstreams = ["nope"]\n')
    with pytest.raises(TopologyError, match="unknown upstream 'nope'"):
        load_topology(bad)


def test_each_instance_gets_its_upstream_listeners_and_mesh_settings(tmp_path: Path) -> None:
    plan = MeshPlan(topology=load_topology(), address="127.0.0.2", run_dir=tmp_path)
    env = plan.service_env(plan.topology.instance("cart-1", "127.0.0.2"), "v1")
    assert env["MESHMART_UPSTREAM_CATALOG"] == "127.0.0.2:30301"
    assert env["MESHMART_HOST"] == "127.0.0.2"
    assert env["MESHMART_CONSUL_HTTP_ADDR"] == "127.0.0.2:8500"
    assert env["MESHMART_SIDECAR_PORT"] == "21130"


def test_the_sidecar_command_uses_the_plaintext_xds_port_and_its_own_admin_port(
    tmp_path: Path,
) -> None:
    plan = MeshPlan(topology=load_topology(), run_dir=tmp_path, envoy_concurrency=1)
    cmd = plan.sidecar_command(plan.topology.instance("payment-2"))
    consul_part = cmd[cmd.index("--") + 1 :]
    assert consul_part[1:5] == ["connect", "envoy", "-sidecar-for", "payment-2"]
    assert consul_part[consul_part.index("-grpc-addr") + 1] == "127.0.0.1:8502"
    assert consul_part[consul_part.index("-admin-bind") + 1] == "127.0.0.1:19141"
    envoy_part = consul_part[consul_part.index("--") + 1 :]
    assert envoy_part[envoy_part.index("--concurrency") + 1] == "1"


def test_test_only_upstreams_add_a_listener_without_touching_the_call_graph(
    tmp_path: Path,
) -> None:
    topo = load_topology()
    plan = MeshPlan(topology=topo, run_dir=tmp_path, extra_upstreams={"cart": ["payment"]})
    cart = next(i for i in plan.instances() if i.instance_id == "cart-1")
    assert "payment" in cart.upstream_ports
    assert ("cart", "payment") not in plan.topology.edges()


def test_the_supervisor_config_has_every_program_in_its_group(tmp_path: Path) -> None:
    plan = MeshPlan(topology=load_topology(), run_dir=tmp_path)
    conf = render(plan, control.programs(plan))
    for inst in plan.instances():
        assert f"[program:{inst.instance_id}]" in conf
        assert f"[program:{inst.instance_id}-sidecar]" in conf
    assert "[program:consul]" in conf
    assert "[group:services]" in conf
