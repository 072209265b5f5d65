"""Both implementations register with Consul alike: the same service, meta, checks,
sidecar, upstreams and tracing config (what the resolver's subsets, the callers' Envoys
and Prometheus read), and both leave the registry when stopped. Run one after the other
against a recording stand-in for the agent, with the very same settings."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from harness.host import free_port
from harness.recommendation import IMPLEMENTATIONS, Implementation, start
from tests.contract.collectors import Received, recorder


def normalised(value: Any) -> Any:
    """What Consul reads from a registration body: keys are case-insensitive, a single
    ``Check`` is ``Checks`` of one, empty values are absent, and JSON held in a string
    (Envoy escape hatches) compares as JSON."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            item = normalised(item)
            if item in (None, "", [], {}):
                continue
            key = key.lower()
            if key == "check":
                key, item = "checks", [item]
            if key in out and isinstance(out[key], list):
                out[key] = [*item, *out[key]] if key == "checks" else item
            else:
                out[key] = item
        return out
    if isinstance(value, list):
        return [normalised(item) for item in value]
    if isinstance(value, str) and value.startswith("{"):
        try:
            return normalised(json.loads(value))
        except ValueError:
            return value
    return value


async def registry_calls(implementation: Implementation, env: dict[str, str]) -> list[Received]:
    with recorder() as consul:
        server = await start(
            implementation,
            {**env, "MESHMART_CONSUL_HTTP_ADDR": consul.url.removeprefix("http://")},
        )
        reader = asyncio.create_task(server.read_stderr())
        try:
            await server.wait_for("consul.registered")
            server.process.send_signal(signal.SIGTERM)
            assert await server.exit_code() == 0, server.log()
        finally:
            if server.process.returncode is None:
                server.process.kill()
            await reader
        return [r for r in consul.requests if r.path.startswith("/v1/agent/")]


async def test_v1_and_v2_register_and_deregister_alike() -> None:
    with recorder() as zipkin:
        env = {
            "MESHMART_PORT": str(free_port()),
            "MESHMART_INSTANCE_ID": "recommendation-9",
            "MESHMART_UPSTREAM_ORDER": "127.0.0.1:30895",
            "MESHMART_UPSTREAM_CATALOG": "127.0.0.1:30891",
            "MESHMART_UPSTREAM_USER": "127.0.0.1:30890",
            "MESHMART_SIDECAR_PORT": "21999",
            "MESHMART_SIDECAR_METRICS_ADDR": "127.0.0.1:20999",
            "MESHMART_SERVICE_VERSION": "v9",
            "MESHMART_METRICS_PORT": str(free_port()),
            "MESHMART_ZIPKIN_URL": f"{zipkin.url}/api/v2/spans",
            "MESHMART_DRAIN_SECONDS": "0",
        }
        calls = {impl.name: await registry_calls(impl, env) for impl in IMPLEMENTATIONS}

    shapes = {
        name: [(c.method, c.path, normalised(c.body)) for c in received]
        for name, received in calls.items()
    }
    v1, v2 = (shapes[impl.name] for impl in IMPLEMENTATIONS)
    assert [(m, p) for m, p, _ in v1] == [
        ("PUT", "/v1/agent/service/register?replace-existing-checks=true"),
        ("PUT", "/v1/agent/service/deregister/recommendation-9"),
    ]
    assert v2 == v1
    registration = v1[0][2]
    assert registration["name"] == "recommendation"
    assert registration["meta"]["version"] == "v9"
    assert registration["meta"]["metrics_port"] == env["MESHMART_METRICS_PORT"]
