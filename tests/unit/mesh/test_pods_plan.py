"""The pod layout of a mesh run (tools/mesh/pods.py, MeshPlan.pods) as data: names and
addresses per run, what binds where, and the commands supervisord runs in each pod.
(tests/mesh/test_pods.py runs it, as root, on the real mesh.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.mesh import cli
from tools.mesh.control import programs
from tools.mesh.plan import MeshPlan
from tools.mesh.pods import PodNetwork
from tools.mesh.topology import load_topology


def pod_plan(address: str = "127.0.0.2") -> MeshPlan:
    return MeshPlan(topology=load_topology(), address=address, pods=True)


def test_two_meshes_get_their_own_names_and_subnets() -> None:
    one, two = PodNetwork.for_loopback("127.0.0.1"), PodNetwork.for_loopback("127.0.0.2")
    assert (one.bridge, one.gateway, one.namespace("payment-1")) == (
        "mm1br", "10.213.1.1", "mm1-payment-1")
    assert (two.bridge, two.gateway, str(two.subnet)) == ("mm2br", "10.213.2.1", "10.213.2.0/24")
    assert len(two.bridge) <= 15  # a Linux interface name


def test_every_instance_has_its_own_pod_address_and_binds_its_own_loopback() -> None:
    plan = pod_plan()
    instances = plan.instances()
    addresses = [i.address for i in instances]
    assert len(set(addresses)) == len(addresses)
    assert all(a.startswith("10.213.2.") and a != "10.213.2.1" for a in addresses)
    for inst in instances:
        assert inst.local_address == "127.0.0.1"
        assert all(t.startswith("127.0.0.1:") for t in
                   (inst.upstream_target(u) for u in inst.upstream_ports))
    # The same plan gives the same addresses (a restarted instance keeps its own).
    assert [i.address for i in pod_plan().instances()] == addresses


def test_instances_and_sidecars_run_in_their_pod_and_reach_consul_on_the_bridge() -> None:
    plan = pod_plan()
    by_name = {p.name: p for p in programs(plan)}
    payment = plan.instance("payment-1")
    service, sidecar = by_name["payment-1"], by_name["payment-1-sidecar"]
    for program in (service, sidecar):
        assert program.command[1:4] == ["netns", "exec", "mm2-payment-1"]
    assert service.env["MESHMART_HOST"] == "127.0.0.1"
    assert service.env["MESHMART_SERVICE_ADDRESS"] == payment.address
    assert service.env["MESHMART_CONSUL_HTTP_ADDR"] == "10.213.2.1:8500"
    assert "10.213.2.1:8502" in sidecar.command
    consul = by_name["consul"].command
    assert consul[consul.index("-client") + 1] == "127.0.0.2 10.213.2.1"
    assert consul[consul.index("-advertise") + 1] == "10.213.2.1"
    # The shared parts stay on the host side: the edge on the loopback.
    assert by_name["edge-1"].command[0] != "/usr/sbin/ip"


def test_without_pods_nothing_changes() -> None:
    plan = MeshPlan(topology=load_topology(), address="127.0.0.2")
    assert plan.shared_address == "127.0.0.2"
    for inst in plan.instances():
        assert inst.local_address == inst.address == "127.0.0.2"
    assert all("netns" not in p.command for p in programs(plan))


def test_without_root_pods_fall_back_to_the_shared_loopback_and_say_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setattr(cli, "pods_unavailable",
                        lambda: "network namespaces need root (CAP_NET_ADMIN)")
    args = cli.mesh_parser("t", None, ["up"]).parse_args(
        ["up", "--pods", "--run-dir", str(tmp_path)])
    plan = cli.plan_of(args)
    assert not plan.pods
    assert cli.pods_notice(args, plan) == (
        "notice: the mesh is NOT isolated: network namespaces need root (CAP_NET_ADMIN), "
        "so every instance shares the loopback 127.0.0.1")
    assert "--no-pods" in cli.run_args(plan)


@pytest.mark.parametrize("asked", [[], ["--pods"]])
def test_a_new_up_asks_for_pods_unless_told_not_to(tmp_path: Path, asked: list[str]) -> None:
    parser = cli.mesh_parser("t", None, ["up", "status"])
    new_up = parser.parse_args(["up", "--run-dir", str(tmp_path), *asked])
    assert cli.pods_wanted(new_up, cli.plan_of(new_up))
    shared = parser.parse_args(["up", "--no-pods", "--run-dir", str(tmp_path)])
    assert not cli.pods_wanted(shared, cli.plan_of(shared))
    assert cli.pods_notice(shared, cli.plan_of(shared)) == ""
    # Any other command follows the run's record of its pods.
    status = parser.parse_args(["status", "--run-dir", str(tmp_path)])
    assert not cli.pods_wanted(status, cli.plan_of(status))
    (tmp_path / "pods").write_text("catalog-1\n")
    assert cli.pods_wanted(status, cli.plan_of(status))
