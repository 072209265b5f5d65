"""The hosts of a mesh (tools/mesh/hosts.py, topology.host_of): one host keeps the
one-host layout exactly; three spread each service's instances, each on its host's agent.
The mesh itself: tests/mesh/test_hosts.py."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tools.mesh import acl, control, hosts
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import load_topology


def plan_with(tmp_path: Path, count: int | None, pods: bool = True) -> MeshPlan:
    return MeshPlan(topology=load_topology(), address="127.0.0.9", run_dir=tmp_path,
                    pods=pods, hosts=count)


def test_topology_default_of_one_host_keeps_todays_layout(tmp_path: Path) -> None:
    default, one = plan_with(tmp_path, None), plan_with(tmp_path, 1)
    assert default.host_count == 1
    assert {i.host for i in default.instances()} == {1}
    assert [(p.name, p.command, p.env) for p in control.programs(default)] == [
        (p.name, p.command, p.env) for p in control.programs(one)]
    consul = next(p for p in control.programs(default) if p.name == "consul").command
    assert "-bootstrap-expect" not in consul and "-retry-join" not in consul
    assert not [p for p in control.programs(default) if p.name.startswith("consul-host")]


def test_three_hosts_spread_every_services_instances(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, 3)
    where: dict[str, list[int]] = defaultdict(list)
    for inst in plan.instances():
        where[inst.service].append(inst.host)
    for service, placed in where.items():
        assert len(set(placed)) == min(len(placed), 3), (service, placed)
    # Every host has instances, not only host 1.
    assert {h for placed in where.values() for h in placed} == {1, 2, 3}


def test_each_instance_and_its_sidecar_use_their_hosts_agent(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, 3)
    for inst in plan.instances():
        agent = plan.host_address(inst.host)
        env = control.service_env(plan, inst, "v")
        assert env["MESHMART_CONSUL_HTTP_ADDR"] == f"{agent}:8500"
        command = plan.sidecar_command(inst)
        assert command[command.index("-grpc-addr") + 1] == f"{agent}:8502"
    programs = {p.name: p.command for p in control.programs(plan)}
    for host in (2, 3):
        command = programs[f"consul-host{host}"]
        assert command[:4] == plan.pod_network.exec_prefix(f"host{host}")
        assert command[command.index("-bootstrap-expect") + 1] == "3"
        assert command[command.index("-node") + 1] == hosts.node_name(host)
    assert programs["consul"][programs["consul"].index("-bootstrap-expect") + 1] == "3"
    # The hosts' namespaces are made (and removed) with the pods.
    assert set(plan.host_pods()) <= set(plan.pod_addresses())
    # With ACLs every agent gets a token for its own node.
    grants = {g.name: g.rules for g in acl.mesh_grants(plan)}
    assert 'node "meshmart-host3"' in (grants["agent-host3"] or "")


def test_more_hosts_need_pods(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pods"):
        _ = plan_with(tmp_path, 3, pods=False).host_count
