"""The sidecar's Zipkin tracer (Consul 1.14 escape hatches in the registration): what the
registration carries, and that the Envoy the mesh runs accepts it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from services.kit.registration import MeshSettings, envoy_tracing, registration
from services.kit.testing import config_for_tests
from tools.mesh.topology import ROOT

ZIPKIN = "http://127.0.0.2:9411/api/v2/spans"


def mesh(zipkin_url: str | None) -> MeshSettings:
    return MeshSettings(
        consul_host="127.0.0.2", consul_port=8500, sidecar_port=21110,
        metrics_addr="127.0.0.2:20110", version="v", zipkin_url=zipkin_url,
        register_timeout=1.0,
    )


def test_with_zipkin_the_sidecar_gets_a_tracer_and_its_collector_cluster() -> None:
    reg = registration(config_for_tests("catalog", port=7110), mesh(ZIPKIN))
    config = reg["Connect"]["SidecarService"]["Proxy"]["Config"]
    tracer = json.loads(config["envoy_tracing_json"])["http"]["typed_config"]
    assert tracer["trace_context_option"] == "USE_B3_WITH_W3C_PROPAGATION"
    assert tracer["collector_endpoint"] == "/api/v2/spans"
    cluster = json.loads(config["envoy_extra_static_clusters_json"])
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.2", "port_value": 9411}
    assert config["envoy_prometheus_bind_addr"] == "127.0.0.2:20110"


def test_without_zipkin_the_sidecar_has_no_tracer() -> None:
    reg = registration(config_for_tests("catalog", port=7110), mesh(None))
    assert set(reg["Connect"]["SidecarService"]["Proxy"]["Config"]) == {
        "envoy_prometheus_bind_addr"
    }


def traced_listener() -> dict[str, Any]:
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                 "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "public_listener",
        "tracing": {"random_sampling": {"value": 0}},
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
        "http_filters": [router],
    }
    return {
        "name": "public_listener",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager", "typed_config": manager,
        }]}],
    }


def test_the_mesh_envoy_accepts_the_tracer_and_cluster(tmp_path: Path) -> None:
    hatches = envoy_tracing(ZIPKIN)
    bootstrap = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "tracing": json.loads(hatches["envoy_tracing_json"]),
        "static_resources": {
            "clusters": [json.loads(hatches["envoy_extra_static_clusters_json"])],
            # Tracing on with 0 % random sampling, as Consul's listeners have it.
            "listeners": [traced_listener()],
        },
    }
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(bootstrap))
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "envoy"), "--mode", "validate", "-c", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "instantiating a new tracer: envoy.tracers.zipkin" in result.stdout + result.stderr
