"""The contracts' REST face, checked on the descriptor set the edge Envoy transcodes with.

Public RPCs must carry a `google.api.http` rule the gRPC-JSON transcoder can serve;
internal RPCs must carry none, so the edge can never expose them by accident.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOSET = ROOT / "gen" / "descriptors" / "meshmart.protoset"

# RPCs only other services (or the operator, through its sidecar) may call. Keep in sync
# with the "Internal" comments in proto/.
INTERNAL_RPCS = frozenset(
    {
        "meshmart.inventory.v1.InventoryService.Reserve",
        "meshmart.inventory.v1.InventoryService.Release",
        "meshmart.inventory.v1.InventoryService.Commit",
        "meshmart.payment.v1.PaymentService.Charge",
        "meshmart.payment.v1.PaymentService.Refund",
        "meshmart.payment.v1.PaymentAdminService.SetFault",
        "meshmart.payment.v1.PaymentAdminService.GetFault",
        "meshmart.order.v1.OrderService.ListRecentOrders",
    }
)


def _descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    # annotations_pb2 is imported above so the http extension is known while parsing.
    return descriptor_pb2.FileDescriptorSet.FromString(PROTOSET.read_bytes())


FILES = {f.name: f for f in _descriptor_set().file}
MESSAGES = {
    f"{f.package}.{m.name}": m for f in FILES.values() for m in f.message_type
}


def _methods() -> Iterator[tuple[str, descriptor_pb2.MethodDescriptorProto]]:
    for f in FILES.values():
        if not f.package.startswith("meshmart."):
            continue
        for service in f.service:
            for method in service.method:
                yield f"{f.package}.{service.name}.{method.name}", method


METHODS = dict(_methods())
PUBLIC = sorted(name for name in METHODS if name not in INTERNAL_RPCS)


def _http_rule(method: descriptor_pb2.MethodDescriptorProto) -> http_pb2.HttpRule | None:
    if not method.options.HasExtension(annotations_pb2.http):
        return None
    return method.options.Extensions[annotations_pb2.http]


def _topology_services() -> list[str]:
    with (ROOT / "topology.toml").open("rb") as f:
        return sorted(tomllib.load(f)["services"])


def test_descriptor_set_carries_imports_for_the_transcoder() -> None:
    # Envoy resolves google.api.http and the well-known types from the set itself.
    assert {"google/api/annotations.proto", "google/api/http.proto"} <= FILES.keys()
    assert "google/protobuf/timestamp.proto" in FILES
    # Source info is what grpcurl `describe` and the OpenAPI summaries show as docs.
    assert FILES["meshmart/catalog/v1/catalog.proto"].source_code_info.location


@pytest.mark.parametrize("name", _topology_services())
def test_every_topology_service_has_a_contract_and_python_stubs(name: str) -> None:
    full_name = f"meshmart.{name}.v1.{name.capitalize()}Service"
    pb2 = importlib.import_module(f"meshmart.{name}.v1.{name}_pb2")
    pb2_grpc = importlib.import_module(f"meshmart.{name}.v1.{name}_pb2_grpc")

    service = pb2.DESCRIPTOR.services_by_name[f"{name.capitalize()}Service"]
    assert service.full_name == full_name
    assert hasattr(pb2_grpc, f"add_{name.capitalize()}ServiceServicer_to_server")
    assert any(m.startswith(full_name + ".") for m in METHODS), f"{full_name} has no RPCs"


def test_internal_rpc_list_names_existing_rpcs() -> None:
    # A renamed internal RPC must not silently drop out of the check below.
    assert sorted(INTERNAL_RPCS - METHODS.keys()) == []


@pytest.mark.parametrize("name", sorted(INTERNAL_RPCS))
def test_internal_rpcs_have_no_rest_mapping(name: str) -> None:
    assert _http_rule(METHODS[name]) is None, f"{name} is internal but has google.api.http"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_rpcs_have_a_servable_rest_mapping(name: str) -> None:
    method = METHODS[name]
    rule = _http_rule(method)
    assert rule is not None, f"{name} is public but has no google.api.http option"

    verb = rule.WhichOneof("pattern")
    assert verb in {"get", "post", "patch", "delete"}
    path = getattr(rule, verb)
    assert path.startswith("/api/v1/"), path
    if verb in {"post", "patch"}:
        assert rule.body == "*", f"{name}: {verb} must take the whole request as body"
    else:
        assert rule.body == "", f"{name}: {verb} cannot have a body"
    assert not rule.additional_bindings

    request = MESSAGES[method.input_type.lstrip(".")]
    fields = {f.name for f in request.field}
    for variable in re.findall(r"\{([^}=]+)", path):
        assert variable in fields, f"{name}: path variable {variable} is not a request field"


def test_rest_routes_are_unique() -> None:
    routes: dict[tuple[str, str], str] = {}
    for name in PUBLIC:
        rule = _http_rule(METHODS[name])
        assert rule is not None
        verb = rule.WhichOneof("pattern")
        assert verb is not None
        # Variables are normalised: /users/{user_id} and /users/{id} are the same route.
        route = (verb, re.sub(r"\{[^}]*\}", "*", getattr(rule, verb)))
        assert route not in routes, f"{name} and {routes[route]} share {route}"
        routes[route] = name
