"""`make compose-up` / `make compose-down`: docker-compose.yml in real containers.

    python -m tools.compose.run up     build every image, `docker-compose up --wait`, the URLs
    python -m tools.compose.run down   `docker-compose down -v`; nothing of the project left
    python -m tools.compose.run ps     `docker-compose ps`

With podman (tools/compose/engine.py: its Docker API on a socket of its own, the
project's containers.conf) the images are built locally (tools/compose/images.py) and
docker/compose.local.yml names them; MESHMART_COMPOSE_OFFICIAL=1 uses the official
images instead (a registry must answer). The run's files are in .run/compose/: the
podman service's log and the pid of the health ticker that keeps podman's healthchecks
running between `up` and `down` (podman has no systemd timer for them here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from tools.compose.engine import Engine, EngineError, HealthTicker, leftovers
from tools.compose.images import build_all
from tools.compose.model import PROJECT
from tools.mesh.edge.mesh import Edge
from tools.mesh.observability import Observability
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import ROOT, load_topology

RUN_DIR = ROOT / ".run" / "compose"
TICKER_PID = RUN_DIR / "health-ticker.pid"


def local_images() -> bool:
    return os.environ.get("MESHMART_COMPOSE_OFFICIAL", "") != "1"


def urls() -> str:
    """The URLs `make up` prints, at the ports docker-compose.yml publishes on loopback."""
    # No ACLs in compose (ContainerPlan): no token to log in with.
    plan = MeshPlan(topology=load_topology(), address="127.0.0.1", run_dir=RUN_DIR / "plan",
                    acl=False)
    lines = [f"Consul UI          http://{plan.consul_http}/ui/"]
    edge = Edge(plan)
    # The edge's admin is not published (it is the pod's): every other line is.
    lines += [line for line in edge.hints().splitlines() if not line.startswith("edge admin")]
    lines += [line for line in Observability(plan).hints().splitlines()
              if not line.startswith(("Consul UI", "logs of one trace"))]
    lines += [
        "containers         .venv/bin/docker-compose ps   (make compose-ps)",
        "stop               make compose-down   (removes containers, network and volumes)",
    ]
    return "\n".join(lines)


def stop_ticker() -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(TICKER_PID.read_text()), signal.SIGTERM)
    TICKER_PID.unlink(missing_ok=True)


def start_ticker() -> None:
    """The health ticker as a process of its own, until `down` stops it (by its pid)."""
    stop_ticker()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with (RUN_DIR / "health-ticker.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.compose.run", "ticker"], cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    TICKER_PID.write_text(str(process.pid))


@dataclass
class Started:
    """What bringing the project up took: each image build (seconds, tools/compose/images.py)
    and the seconds from `up` to every container healthy."""

    builds: dict[str, float] = field(default_factory=dict)
    build_seconds: float = 0.0
    healthy_after: float = 0.0


def build_and_up(engine: Engine, out: TextIO = sys.stdout) -> Started:
    """Every image built (locally, or `docker-compose build` with the official images),
    then `docker-compose up --wait` until every container is healthy: `make compose-up`
    and tests/compose's session fixture both run this."""
    began = time.monotonic()
    started = Started()
    if engine.local_images:
        started.builds = build_all(engine, engine.config())
    else:
        engine.compose("build", capture=False, timeout=3600)
    started.build_seconds = time.monotonic() - began
    out.write(f"==> images built in {started.build_seconds:.0f} s "
              f"({len(started.builds)} builds)\n")
    for image, took in started.builds.items():
        out.write(f"    {image:<58} {took:6.1f} s\n")
    started.healthy_after = engine.up()
    out.write(f"==> every container healthy, every Consul check passing "
              f"{started.healthy_after:.0f} s after up\n")
    return started


def up() -> int:
    with Engine.started(PROJECT, local_images(), run_dir=RUN_DIR) as engine:
        build_and_up(engine)
        start_ticker()
        sys.stdout.write("\n" + engine.compose("ps", "--all").stdout + "\n" + urls() + "\n")
    return 0


def down() -> int:
    stop_ticker()
    with Engine.started(PROJECT, local_images(), run_dir=RUN_DIR) as engine:
        engine.down()
        left = {kind: names for kind, names in leftovers(engine).items() if names}
    if left:
        sys.stderr.write(f"error: left behind: {left}\n")
        return 1
    sys.stdout.write("==> no container, network or volume of the project is left\n")
    return 0


def ps() -> int:
    with Engine.started(PROJECT, local_images(), run_dir=RUN_DIR) as engine:
        sys.stdout.write(engine.compose("ps", "--all").stdout)
    return 0


def ticker() -> int:
    engine = Engine(run_dir=RUN_DIR, project=PROJECT)
    health = HealthTicker(engine)
    signal.signal(signal.SIGTERM, lambda *_: health.halt.set())
    health.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    command = {"up": up, "down": down, "ps": ps, "ticker": ticker}.get(args[0] if args else "")
    if command is None:
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        return command()
    except EngineError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())

