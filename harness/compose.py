"""docker-compose.yml up in real containers under a project of its own, beside anything
else running: tests/compose's session fixture and bench/compose_overhead.py.

`make compose-up`'s code path (tools.compose.run.build_and_up: every image built locally
with podman, tools/compose/images.py, then `docker-compose up --wait` until every
container is healthy) on podman's Docker API (tools/compose/engine.py: its own `podman
system service`, the project's containers.conf, the health ticker). The published ports
(Consul, the edge, Zipkin, Prometheus) are on a free loopback address, as a developer's
`make up` or `make compose-up` has them on 127.0.0.1; the mesh network's subnet, the
other thing two compose projects cannot share (static addresses), is a free /24 too: the
file is the one `make compose` writes with only its addresses on that subnet
(tools/compose/render.py write_project; docker-compose.yml keeps 10.89.0.0/24).

Teardown, also after a failure anywhere: `docker-compose down -v`, the podman service
stopped by its pid, and then nothing of the project may be left (podman's own listing by
the project label): LeftBehind says what was.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from harness.host import free_loopback
from tools.compose.engine import Engine, free_subnet, leftovers
from tools.compose.render import ports_override, published_ports, write_project
from tools.compose.run import Started, build_and_up


class LeftBehind(AssertionError):
    """`docker-compose down -v` left a container, network or volume, or podman's service
    still runs."""


@dataclass
class ComposeRun:
    engine: Engine
    address: str  # the loopback address the published ports are on
    subnet: str  # the mesh network's
    started: Started
    config: dict[str, Any]  # the merged compose model (`docker-compose config`)

    def url(self, port: int) -> str:
        return f"http://{self.address}:{port}"

    def pid(self, service: str) -> int:
        """The host pid of a running container's first process (to enter its network
        namespace: the sidecar of ``<service>`` shares it)."""
        [found] = [c for c in self.engine.containers()
                   if c["Labels"].get("com.docker.compose.service") == service]
        [inspected] = self.engine.podman_json("inspect", found["Id"])
        return int(inspected["State"]["Pid"])


@contextlib.contextmanager
def project(name: str, out: TextIO = sys.stdout) -> Iterator[ComposeRun]:
    """The shop in containers as project ``name`` (free address and subnet), torn down
    on exit; raises LeftBehind if anything of it is left."""
    with tempfile.TemporaryDirectory(prefix="meshmart-compose-") as tmp_dir:
        tmp = Path(tmp_dir)
        # A short folder for podman's socket (a unix socket path has at most 107 bytes).
        run_dir = tmp / "podman"
        ports = published_ports(Engine(run_dir=run_dir, project=name).config())
        address = free_loopback(*(n for numbers in ports.values() for n in numbers),
                                first=20)
        override = tmp / "ports.yml"
        override.write_text(ports_override(ports, address))
        subnet = free_subnet(Engine(run_dir=run_dir))
        files = write_project(tmp / "project", subnet)
        engine = Engine(run_dir=run_dir, project=name, overrides=(override,),
                        compose_file=files.compose_file, local_override=files.local_override)
        try:
            engine.start()
            began = time.monotonic()
            started = build_and_up(engine, out=out)
            out.write(f"==> up in {time.monotonic() - began:.0f} s, published on {address}, "
                      f"network {subnet}\n")
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
            if service is not None and service.poll() is None:
                raise LeftBehind("podman service still running")
            if left:
                raise LeftBehind(f"left behind by docker-compose down -v: {left}")
