"""The operator's identity as data (tools/mesh/operator.py): its listeners, its program,
its registration, and the rules tools/mesh/entries.py holds the config entries to.
(tests/mesh/test_operator.py runs it on the real mesh.)"""

from __future__ import annotations

from typing import Any

from tools.mesh.edge import api
from tools.mesh.operator import Operator, operator_permissions, permits
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import load_topology

ADMIN = "/meshmart.payment.v1.PaymentAdminService/SetFault"


def operator(address: str = "127.0.0.2", pods: bool = False) -> Operator:
    return Operator(MeshPlan(topology=load_topology(), address=address, pods=pods))


def test_a_listener_per_service_and_per_payment_instance_on_the_mesh_address() -> None:
    inst = operator().instance
    assert inst.upstream_target("catalog") == "127.0.0.2:32010"
    assert inst.upstream_target("payment") == "127.0.0.2:32040"
    assert inst.upstream_target("payment-1") == "127.0.0.2:32041"
    assert inst.upstream_target("payment-2") == "127.0.0.2:32042"
    assert set(load_topology().services) | {"payment-1", "payment-2"} == set(
        inst.upstream_ports)
    # With pods it stays on the host side, like the edge's sidecar.
    assert operator(pods=True).instance.upstream_target("catalog") == "127.0.0.2:32010"


def test_one_program_registers_operator_1_and_becomes_its_sidecar() -> None:
    (program,) = operator().programs()
    assert (program.name, program.group) == ("operator-1-sidecar", "sidecars")
    assert program.command[1:4] == ["-m", "tools.mesh.operator", "run"]
    body = operator().registration()
    assert (body["Name"], body["ID"]) == ("operator", "operator-1")
    assert "Check" not in body  # no process: its sidecar's checks are all there is
    upstreams = body["Connect"]["SidecarService"]["Proxy"]["Upstreams"]
    assert {"DestinationName": "payment-1", "LocalBindAddress": "127.0.0.2",
            "LocalBindPort": 32041} in upstreams


def test_the_operator_may_read_reflect_check_health_and_turn_payments_knob() -> None:
    allowed = operator_permissions(api.load_descriptor_set(), "payment")
    assert ("PathExact", "/meshmart.payment.v1.PaymentService/ListPayments") in allowed
    assert ("PathPrefix", "/meshmart.payment.v1.PaymentAdminService/") in allowed
    assert ("PathPrefix", "/grpc.reflection.v1alpha.ServerReflection/") in allowed
    paths = {path for _, path in allowed}
    assert "/meshmart.payment.v1.PaymentService/Charge" not in paths


def test_permits_follows_envoys_path_matches() -> None:
    assert permits({"PathPrefix": "/meshmart.payment.v1."}, ADMIN)
    assert permits({"PathRegex": "/meshmart[.]payment[.]v1[.].*"}, ADMIN)
    assert not permits({"PathRegex": "/meshmart"}, ADMIN)  # RE2 full match
    assert not permits({"PathExact": "/meshmart.payment.v1.PaymentService/Charge"}, ADMIN)


def intention(name: str, *sources: dict[str, Any]) -> dict[str, Any]:
    return {"Kind": "service-intentions", "Name": name, "Sources": list(sources)}


def test_entries_that_let_another_identity_reach_the_knob_are_refused() -> None:
    op = operator()
    wide = {"Name": "storefront", "Permissions": [
        {"Action": "allow", "HTTP": {"PathPrefix": "/meshmart.payment.v1."}},
        {"Action": "deny", "HTTP": {"PathPrefix": "/"}}]}
    problems = op.entry_problems([intention("payment", wide)], [])
    assert any("storefront -> payment allows " + ADMIN in p for p in problems), problems
    # A deny before the allow keeps it out (permissions are tried in order).
    guarded = {"Name": "order", "Permissions": [
        {"Action": "deny", "HTTP": {"PathPrefix": "/meshmart.payment.v1.PaymentAdminService/"}},
        {"Action": "allow", "HTTP": {"PathPrefix": "/"}}]}
    problems = op.entry_problems([intention("payment", guarded)], [])
    assert not any("order -> payment" in p for p in problems), problems


def test_the_operators_intention_must_be_exactly_its_set_and_instances_resolve() -> None:
    op = operator()
    exact = [{"Action": "allow", "HTTP": {match: path}}
             for match, path in sorted(operator_permissions(api.load_descriptor_set(), "cart"))]
    writes = {"Action": "allow", "HTTP": {"PathExact": "/meshmart.cart.v1.CartService/AddItem"}}
    deny = {"Action": "deny", "HTTP": {"PathPrefix": "/"}}
    ok = op.entry_problems([intention("cart", {"Name": "operator",
                                               "Permissions": [*exact, deny]})], [])
    assert not any("operator -> cart" in p for p in ok), ok
    too_much = op.entry_problems([intention("cart", {"Name": "operator",
                                                     "Permissions": [*exact, writes, deny]})], [])
    assert any("operator -> cart" in p and "AddItem" in p for p in too_much), too_much
    # Without payment-1's resolver and subset, both are named.
    problems = " ".join(op.entry_problems([], []))
    assert "no service-resolver payment-1" in problems
    assert "service-resolver payment has no subset payment-2" in problems
