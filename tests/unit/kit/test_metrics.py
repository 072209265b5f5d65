"""RED metrics per gRPC method and code, and the /metrics endpoint serve() announces."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from prometheus_client import REGISTRY

from services.kit.metrics import code_name, metrics_port_setting, start_metrics_endpoint
from services.kit.registration import MeshSettings, registration
from services.kit.testing import config_for_tests, running_server
from tests.unit.kit.echo_service import SERVICE, SPEC, EchoClient, StringValue


def handled(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "grpc_server_handled_total",
        {"grpc_service": SERVICE, "grpc_method": method, "grpc_type": "unary", "grpc_code": code},
    )
    return value or 0.0


def latency_count(method: str) -> float:
    value = REGISTRY.get_sample_value(
        "grpc_server_handling_seconds_count",
        {"grpc_service": SERVICE, "grpc_method": method, "grpc_type": "unary"},
    )
    return value or 0.0


async def test_every_rpc_is_counted_by_method_and_code_and_timed() -> None:
    before = {c: handled("Echo", c) for c in ("OK", "NotFound", "Internal")}
    timed_before = latency_count("Echo")
    async with running_server([SPEC]) as target, grpc.aio.insecure_channel(target) as channel:
        client = EchoClient(channel)
        for value in ("a", "b", "not-found", "crash"):
            try:
                await client.echo(StringValue(value=value), timeout=5)
            except grpc.aio.AioRpcError:
                pass
    assert handled("Echo", "OK") - before["OK"] == 2
    assert handled("Echo", "NotFound") - before["NotFound"] == 1
    assert handled("Echo", "Internal") - before["Internal"] == 1
    assert latency_count("Echo") - timed_before == 4


def test_code_labels_are_spelled_as_grpc_spells_them() -> None:
    assert code_name(grpc.StatusCode.OK) == "OK"
    assert code_name(grpc.StatusCode.DEADLINE_EXCEEDED) == "DeadlineExceeded"
    assert code_name(grpc.StatusCode.UNAVAILABLE) == "Unavailable"


def test_the_endpoint_serves_the_rpc_metrics_in_prometheus_text() -> None:
    endpoint = start_metrics_endpoint("127.0.0.1", 0)
    with urllib.request.urlopen(endpoint.url, timeout=5) as response:
        body = response.read().decode()
    assert "# TYPE grpc_server_handled_total counter" in body
    assert "# TYPE grpc_server_handling_seconds histogram" in body


def test_metrics_port_is_read_from_the_environment() -> None:
    assert metrics_port_setting({}) is None
    assert metrics_port_setting({"MESHMART_METRICS_PORT": "22110"}) == 22110
    assert metrics_port_setting({"MESHMART_METRICS_PORT": "0"}) == 0


@pytest.mark.parametrize("metrics_port", [22110, None])
def test_the_registration_announces_the_metrics_ports(metrics_port: int | None) -> None:
    mesh = MeshSettings(
        consul_host="127.0.0.1",
        consul_port=8500,
        sidecar_port=21110,
        metrics_addr="127.0.0.1:20110",
        version="v",
        zipkin_url=None,
        register_timeout=1.0,
    )
    reg = registration(config_for_tests("catalog", port=7110), mesh, metrics_port)
    if metrics_port is None:
        assert "metrics_port" not in reg["Meta"]
    else:
        assert reg["Meta"]["metrics_port"] == "22110"
    # The sidecar's Envoy Prometheus listener, found by Prometheus the same way.
    assert reg["Connect"]["SidecarService"]["Meta"]["metrics_port"] == "20110"
