"""What a service instance sends to Consul when the mesh is on (and that it is off by default)."""

from __future__ import annotations

from services.kit.config import load_config
from services.kit.registration import load_mesh_settings, mesh_hooks, registration

ENV = {
    "MESHMART_PORT": "7150",
    "MESHMART_HOST": "127.0.0.2",
    "MESHMART_INSTANCE_ID": "order-1",
    "MESHMART_UPSTREAM_PAYMENT": "127.0.0.2:30504",
    "MESHMART_UPSTREAM_USER": "127.0.0.2:30500",
    "MESHMART_CONSUL_HTTP_ADDR": "127.0.0.2:8500",
    "MESHMART_SIDECAR_PORT": "21150",
    "MESHMART_SIDECAR_METRICS_ADDR": "127.0.0.2:20150",
    "MESHMART_SERVICE_VERSION": "abc123",
}


def test_without_a_consul_address_nothing_registers() -> None:
    config = load_config("order", {"MESHMART_PORT": "7150"})
    assert load_mesh_settings({"MESHMART_PORT": "7150"}) is None
    assert mesh_hooks(config, {"MESHMART_PORT": "7150"}) == ([], [])


def test_the_registration_has_a_grpc_check_and_a_sidecar_with_the_upstreams() -> None:
    config = load_config("order", ENV)
    mesh = load_mesh_settings(ENV)
    assert mesh is not None
    reg = registration(config, mesh)
    assert reg["ID"] == "order-1"
    assert (reg["Address"], reg["Port"]) == ("127.0.0.2", 7150)
    assert reg["Meta"]["version"] == "abc123"
    assert reg["Check"]["GRPC"] == "127.0.0.2:7150"
    assert reg["Check"]["DeregisterCriticalServiceAfter"] == "1m"
    sidecar = reg["Connect"]["SidecarService"]
    assert sidecar["Port"] == 21150
    proxy = sidecar["Proxy"]
    assert proxy["LocalServiceAddress"] == "127.0.0.2"
    assert proxy["Config"] == {"envoy_prometheus_bind_addr": "127.0.0.2:20150"}
    assert proxy["Upstreams"] == [
        {"DestinationName": "payment", "LocalBindAddress": "127.0.0.2", "LocalBindPort": 30504},
        {"DestinationName": "user", "LocalBindAddress": "127.0.0.2", "LocalBindPort": 30500},
    ]
    assert {c.get("TCP") for c in sidecar["Checks"]} >= {"127.0.0.2:21150"}
    assert "Expose" not in proxy  # the agent reaches the process itself


def test_in_a_pod_it_registers_the_pods_address_and_consul_checks_through_the_sidecar() -> None:
    env = {**ENV, "MESHMART_HOST": "127.0.0.1", "MESHMART_SERVICE_ADDRESS": "10.213.2.5",
           "MESHMART_UPSTREAM_PAYMENT": "127.0.0.1:30504",
           "MESHMART_UPSTREAM_USER": "127.0.0.1:30500"}
    reg = registration(load_config("order", env), load_mesh_settings(env))  # type: ignore[arg-type]
    assert reg["Address"] == "10.213.2.5"  # where callers' sidecars find its sidecar
    proxy = reg["Connect"]["SidecarService"]["Proxy"]
    assert proxy["LocalServiceAddress"] == "127.0.0.1"  # the pod's own loopback
    assert proxy["Expose"] == {"Checks": True}  # the gRPC check through the sidecar
    assert reg["Check"]["GRPC"] == "127.0.0.1:7150"  # Consul rewrites it to the exposed path
    assert {c.get("TCP") for c in reg["Connect"]["SidecarService"]["Checks"]} >= {
        "10.213.2.5:21150"}
