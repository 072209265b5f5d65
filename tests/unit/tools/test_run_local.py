"""tools/run_local.py: the plan it derives from topology.toml, and a real launch and stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.host import free_port
from tools.run_local import (
    ROOT,
    ServiceEntry,
    child_env,
    dependency_levels,
    instances_of,
    load_topology,
    port_is_free,
)

TOPOLOGY = {
    "catalog": ServiceEntry("catalog", 7110, 2, ()),
    "order": ServiceEntry("order", 7150, 1, ("catalog",)),
    "storefront": ServiceEntry("storefront", 7190, 1, ("order", "catalog")),
}


def test_upstreams_start_before_their_callers() -> None:
    assert dependency_levels(TOPOLOGY) == [["catalog"], ["order"], ["storefront"]]


def test_the_repositorys_topology_loads_and_orders() -> None:
    topology = load_topology(ROOT / "topology.toml")
    started: set[str] = set()
    for level in dependency_levels(topology):
        for name in level:
            assert set(topology[name].upstreams) <= started
        started.update(level)
    assert started == set(topology)


def test_each_instance_gets_its_port_and_the_first_upstream_instance(tmp_path: Path) -> None:
    catalog = instances_of(TOPOLOGY["catalog"], TOPOLOGY)
    assert [(i.instance_id, i.port) for i in catalog] == [("catalog-1", 7110), ("catalog-2", 7111)]

    (storefront,) = instances_of(TOPOLOGY["storefront"], TOPOLOGY)
    env = child_env(storefront, tmp_path, {"PATH": "/bin", "MESHMART_UPSTREAM_USER": "stale:1"})
    assert env["MESHMART_PORT"] == "7190"
    assert env["MESHMART_INSTANCE_ID"] == "storefront-1"
    assert env["MESHMART_UPSTREAM_ORDER"] == "127.0.0.1:7150"
    assert env["MESHMART_UPSTREAM_CATALOG"] == "127.0.0.1:7110"
    assert "MESHMART_UPSTREAM_USER" not in env  # inherited settings do not leak in
    assert env["MESHMART_DATA_DIR"] == str(tmp_path / "data")
    assert env["PATH"] == "/bin"


async def test_launches_built_services_skips_the_rest_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    topology = tmp_path / "topology.toml"
    # loyalty has no services/loyalty/__main__.py: it must be skipped, not fail.
    topology.write_text(
        f"[services.catalog]\nport = {port}\ninstances = 1\nupstreams = []\n"
        f"[services.loyalty]\nport = {free_port()}\ninstances = 1\nupstreams = []\n"
    )
    launcher = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tools" / "run_local.py"),
        "--topology",
        str(topology),
        "--run-dir",
        str(tmp_path / "run"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert launcher.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not output or "all instances SERVING" not in output[-1]:
                line = await launcher.stdout.readline()
                assert line, f"launcher ended early: {output}"
                output.append(line.decode())

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert any(line.startswith("skip loyalty") for line in output)
        assert any(line.startswith("catalog-1") for line in output)
        assert (tmp_path / "run" / "logs" / "catalog-1.log").stat().st_size > 0
    finally:
        if launcher.returncode is None:
            launcher.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            rest, _ = await launcher.communicate()

    assert launcher.returncode == 0, [*output, rest.decode()]
    # The child went with the launcher, and nothing listens on its port any more.
    (row,) = [line.split() for line in output if line.startswith("catalog-1")]
    with pytest.raises(ProcessLookupError):
        os.kill(int(row[2]), 0)
    assert port_is_free(port)
