"""docker-compose.yml in real containers, brought up once for tests/compose.

The fixture runs `make compose-up`'s code path (tools.compose.run.build_and_up: every
image built locally with podman, tools/compose/images.py, then `docker-compose up --wait`
until every container is healthy) on podman's Docker API (tools/compose/engine.py: its
own `podman system service`, the project's containers.conf, the health ticker), under a
project name of its own and with the published ports (Consul, the edge, Zipkin,
Prometheus) on a free loopback address of its own: it runs beside a developer's `make
up` or `make compose-up`, whose ports are on 127.0.0.1. The mesh network's subnet, the
other thing two compose projects cannot share (static addresses), is a free /24 too:
the file is the one `make compose` writes, with only its addresses on that subnet
(tools/compose/render.py write_project; docker-compose.yml keeps 10.89.0.0/24).

Teardown, also after a failure anywhere: `docker-compose down -v`, the podman service
process stopped (by its pid), and then nothing of the project left: no container,
network or volume (podman's own listing by the project label).

Package scope: once per session for tests/compose, and torn down as soon as its last
test has run (tests/conftest.py orders the in-process phase, tests/compose included,
before the session mesh): the ~30 containers are not left running under the mesh tests.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.host import free_loopback
from tests.compose.helpers import normalized
from tools.compose.engine import Engine, free_subnet, leftovers
from tools.compose.render import ports_override, published_ports, write_project
from tools.compose.run import Started, build_and_up

PROJECT = "meshmart-test"


@dataclass
class ComposeRun:
    engine: Engine
    address: str  # the loopback address the published ports are on
    subnet: str  # the mesh network's
    started: Started
    config: dict[str, Any]  # the merged compose model (`docker-compose config`)

    def url(self, port: int) -> str:
        return f"http://{self.address}:{port}"


@pytest.fixture(scope="package")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeRun]:
    tmp = tmp_path_factory.mktemp("compose")
    ports = published_ports(normalized(tmp))
    address = free_loopback(*(n for numbers in ports.values() for n in numbers), first=20)
    override = tmp / "ports.yml"
    override.write_text(ports_override(ports, address))
    # A short folder for podman's socket (a unix socket path has at most 107 bytes).
    run_dir = Path(tmp_path_factory.mktemp("podman"))
    subnet = free_subnet(Engine(run_dir=run_dir))
    files = write_project(tmp / "project", subnet)
    engine = Engine(run_dir=run_dir, project=PROJECT, overrides=(override,),
                    compose_file=files.compose_file, local_override=files.local_override)
    try:
        engine.start()
        began = time.monotonic()
        started = build_and_up(engine, out=sys.stdout)
        sys.stdout.write(f"==> up in {time.monotonic() - began:.0f} s, published on "
                         f"{address}, network {subnet}\n")
        yield ComposeRun(engine, address, subnet, started, engine.config())
    finally:
        try:
            if engine.process is not None and engine.process.poll() is None:
                engine.down()
        finally:
            engine.stop()
            # podman's own listing (its command line, not the stopped service's API).
            left = {kind: names for kind, names in leftovers(engine).items() if names}
        service = engine.process
        assert service is None or service.poll() is not None, "podman service still running"
        assert not left, f"left behind by docker-compose down -v: {left}"
