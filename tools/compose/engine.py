"""The container engine docker-compose drives: podman's Docker API, started and stopped here.

``Engine.started()`` starts ``podman system service`` on a socket of its own (a folder
under /tmp; its pid kept and stopped by pid), with the project's containers.conf
(CONTAINERS_CONF, written by tools/install-containers.sh: runc, ulimits this machine
allows; the machine's /etc/containers is left alone), and runs the compose v2 binary of
`make setup` against it (DOCKER_HOST). ``compose()`` is `docker-compose -p <project> -f
docker-compose.yml -f docker/compose.local.yml ...` (the local override only when the
local images are used, see tools/compose/images.py).

Healthchecks: podman runs a container's healthcheck from a systemd timer. Without
systemd (containers, CI runners) no timer exists and a container would stay "starting"
forever, so ``HealthTicker`` does the timer's job: ``podman healthcheck run`` for each
container of the project, at the container's start interval while it starts and at its
interval after. With Docker none of this is needed (its daemon runs the checks).

Restarts: a sidecar exits 75 when its pod's network goes (its instance stopped or died,
docker/sidecar-entrypoint.sh). podman applies the restart policy once, at that exit,
and gives up for good because the instance it joins is not running. So the ticker
starts such a sidecar again once its instance runs again: it joins the new namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.compose.model import SERVICE_STOP_GRACE, START_INTERVAL
from tools.mesh.health import wait_for_state
from tools.mesh.observability import cache_dir
from tools.mesh.topology import ROOT

COMPOSE_BIN = ROOT / ".venv" / "bin" / "docker-compose"
COMPOSE_FILE = ROOT / "docker-compose.yml"
LOCAL_OVERRIDE = ROOT / "docker" / "compose.local.yml"
# docker/sidecar-entrypoint.sh's exit code when the pod's network is gone.
POD_GONE = 75
CONTAINERS_CONF = cache_dir() / "containers" / "containers.conf"


class EngineError(Exception):
    """podman or docker-compose failed; the message says which command and why."""


@dataclass
class Engine:
    run_dir: Path
    project: str = "meshmart"
    local_images: bool = True
    # More `-f <file>` merged last (tests/compose: the published ports on a loopback
    # address of the test session's own).
    overrides: tuple[Path, ...] = ()
    # The file and its local override: the committed ones, or a project's of its own on
    # another subnet (tools/compose/render.py write_project).
    compose_file: Path = COMPOSE_FILE
    local_override: Path = LOCAL_OVERRIDE
    process: subprocess.Popen[bytes] | None = None
    ticker: HealthTicker | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.run_dir / "podman.sock"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
        env.update({
            "CONTAINERS_CONF": str(CONTAINERS_CONF),
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.run_dir / "docker-config"),
        })
        return env

    @property
    def podman(self) -> list[str]:
        return ["env", f"CONTAINERS_CONF={CONTAINERS_CONF}", "podman"]

    @property
    def files(self) -> list[str]:
        files = ["-f", str(self.compose_file)]
        if self.local_images:
            files += ["-f", str(self.local_override)]
        for override in self.overrides:
            files += ["-f", str(override)]
        return files

    # --- the service ------------------------------------------------------------------
    def start(self) -> None:
        for tool in ("podman", "runc"):
            if shutil.which(tool) is None:
                raise EngineError(f"{tool} is missing: run make setup as root, or "
                                  "apt-get install podman runc debootstrap")
        if not CONTAINERS_CONF.exists():
            raise EngineError(f"{CONTAINERS_CONF} is missing: run make setup")
        if not COMPOSE_BIN.exists():
            raise EngineError(f"{COMPOSE_BIN} is missing: run make setup")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / "podman-service.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*self.podman, "system", "service", "--time=0", f"unix://{self.socket}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineError(f"podman system service exited {self.process.returncode}"
                                  f" (see {self.run_dir / 'podman-service.log'})")
            if self.socket.exists() and self.compose_ok("version"):
                return
            time.sleep(0.2)
        raise EngineError("podman system service did not answer in 30 s")

    def stop(self) -> None:
        if self.ticker is not None:
            self.ticker.stop()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    @classmethod
    @contextlib.contextmanager
    def started(cls, project: str = "meshmart", local_images: bool = True,
                run_dir: Path | None = None, overrides: Sequence[Path] = ()) -> Iterator[Engine]:
        owned = run_dir is None
        directory = run_dir or Path(tempfile.mkdtemp(prefix="meshmart-podman-"))
        engine = cls(run_dir=directory, project=project, local_images=local_images,
                     overrides=tuple(overrides))
        try:
            engine.start()
            yield engine
        finally:
            engine.stop()
            if owned:
                shutil.rmtree(directory, ignore_errors=True)

    # --- compose ----------------------------------------------------------------------
    def compose_command(self, *args: str) -> list[str]:
        return [str(COMPOSE_BIN), "-p", self.project, *self.files,
                "--project-directory", str(ROOT), *args]

    def compose(self, *args: str, timeout: float = 600, check: bool = True,
                capture: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.compose_command(*graceful(args)), env=self.env, cwd=ROOT, text=True,
            timeout=timeout, capture_output=capture, check=False,
        )
        if check and result.returncode != 0:
            raise EngineError(f"docker-compose {' '.join(args)} exited {result.returncode}: "
                              f"{(result.stderr or '').strip()[-2000:]}")
        return result

    def compose_ok(self, *args: str) -> bool:
        return self.compose(*args, timeout=30, check=False).returncode == 0

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.compose("config", "--format", "json").stdout)
        return config

    def has_image(self, image: str) -> bool:
        return subprocess.run([*self.podman, "image", "exists", image],
                              check=False).returncode == 0

    def podman_json(self, *args: str) -> Any:
        result = subprocess.run([*self.podman, *args], capture_output=True, text=True,
                                check=False, timeout=60)
        if result.returncode != 0:
            raise EngineError(f"podman {' '.join(args)}: {result.stderr.strip()}")
        return json.loads(result.stdout or "[]")

    def containers(self) -> list[dict[str, Any]]:
        """The project's containers, running or not (podman's own view)."""
        found: list[dict[str, Any]] = self.podman_json(
            "ps", "-a", "--format", "json",
            "--filter", f"label=com.docker.compose.project={self.project}")
        return found

    def up(self, timeout: float = 900) -> float:
        """`docker-compose up --wait --no-build` with the health ticker, then Consul
        passing every check; seconds taken."""
        started = time.monotonic()
        self.ticker = HealthTicker(self)
        self.ticker.start()
        try:
            self.compose("up", "--detach", "--wait", "--no-build", "--pull", "never",
                         "--wait-timeout", str(int(timeout)), timeout=timeout + 60)
        except EngineError as error:
            raise EngineError(f"{error}\n{self.not_up()}") from None
        # Healthy containers are not yet a mesh that routes: Consul runs its own checks
        # (each instance's gRPC health, the sidecars' alias checks) on its own interval,
        # and a caller's sidecar sends nothing to an instance Consul does not pass. So
        # `up` ends, as `make up` does, when Consul passes every check.
        deadline = started + timeout
        wait_for_state(self.consul_checks, {}, deadline, lambda state: EngineError(
            f"every container healthy but Consul does not pass: {state}"))
        return time.monotonic() - started

    def consul_checks(self) -> dict[str, str]:
        """Consul's checks that do not pass (check -> status), asked inside the consul
        container (its API is published on an address each run chooses)."""
        result = self.compose("exec", "-T", "consul", "wget", "-qO-",
                              "http://127.0.0.1:8500/v1/health/state/any", timeout=30,
                              check=False)
        if result.returncode != 0:
            return {"consul": (result.stderr or "no answer").strip()[-200:]}
        checks = json.loads(result.stdout or "[]")
        return {f"{c.get('ServiceID') or c['CheckID']}: {c['Name']}": c["Status"]
                for c in checks if c["Status"] != "passing"}

    def not_up(self, lines: int = 40) -> str:
        """The containers that did not come up (exited non-zero, or not healthy), each
        with the end of its log: what a failed `up` says about why."""
        try:
            out = self.compose("ps", "--all", "--format", "json", timeout=60).stdout
        except EngineError as error:
            return f"(docker-compose ps failed too: {error})"
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        failed = [r for r in rows
                  if (r.get("State") == "exited" and r.get("ExitCode") not in (0, None))
                  or r.get("Health") == "unhealthy"]
        # Still starting when `up` gave up: most often waiting on a failed one (named).
        starting = sorted(r["Service"] for r in rows if r.get("Health") == "starting")
        report = [f"still starting: {', '.join(starting)}"] if starting else []
        for row in failed:
            logs = self.compose("logs", "--no-color", "--tail", str(lines), row["Service"],
                                timeout=60, check=False)
            report.append(f"--- {row['Service']}: {row.get('State')} exit "
                          f"{row.get('ExitCode')} health {row.get('Health') or '-'}\n"
                          f"{(logs.stdout + logs.stderr).strip()}")
        return "\n".join(report) or "(every container is up)"

    def down(self) -> None:
        """`docker-compose down -v`, and nothing of the project left behind."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "25", timeout=300)
        if self.ticker is not None:
            self.ticker.stop()


def graceful(args: Sequence[str]) -> Sequence[str]:
    """`restart` and `stop` with the file's stop grace as their --timeout, unless given.

    Without one, compose leaves the timeout to the engine: Docker then waits each
    container's stop_grace_period, but podman 4.3's Docker API stops at once. Measured:
    `docker-compose restart payment-1` killed it 0.17 s after the restart (podman events),
    its log has no SIGTERM, no deregistration, no drain (the kit traps SIGTERM: SigCgt),
    and a Charge in flight on it hung without a reset (its veth gone) until order's
    deadline cancelled the order; with --timeout it stops as under supervisord."""
    if not args or args[0] not in ("restart", "stop") or any(
            a in ("-t", "--timeout") or a.startswith("--timeout=") for a in args):
        return args
    return [args[0], "--timeout", str(int(parse_duration(SERVICE_STOP_GRACE, 20.0))),
            *args[1:]]


def parse_duration(text: str | None, default: float) -> float:
    """A compose duration as podman reports it ("15s", "1m30s", "500ms", ns ints)."""
    if text is None:
        return default
    if isinstance(text, int | float):
        return float(text) / 1e9
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text[index:index + 2] == "ms" else char
        total += float(number or 0) * units.get(unit, 1.0)
        number, index = "", index + len(unit)
    return total or default


class HealthTicker(threading.Thread):
    """Runs each project container's healthcheck on its schedule, as systemd's timer
    would: `podman healthcheck run <id>` (podman records the result, compose reads it)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True, name="health-ticker")
        self.engine = engine
        self.halt = threading.Event()
        self.due: dict[str, float] = {}
        self.schedule: dict[str, tuple[float, float, float]] = {}
        self.passed: set[str] = set()
        self.exits: dict[str, tuple[bool, str]] = {}

    def stop(self) -> None:
        self.halt.set()
        if self.is_alive():
            self.join(timeout=30)

    def _schedule(self, container: str, run: str) -> tuple[float, float, float]:
        """(start interval, interval, end of the start period) of this start of it."""
        if run not in self.schedule:
            inspected = self.engine.podman_json("inspect", container)
            config = inspected[0]["Config"] if inspected else {}
            health = config.get("Healthcheck") or {}
            started = time.monotonic()
            self.schedule[run] = (
                # compose.local.yml drops start_interval (podman's API is too old for
                # compose to send it): the file's value.
                parse_duration(health.get("StartInterval"), START_INTERVAL) if health else 0.0,
                parse_duration(health.get("Interval"), 15.0) if health else 0.0,
                started + parse_duration(health.get("StartPeriod"), 60.0),
            )
        return self.schedule[run]

    def restart_given_up(self, containers: list[dict[str, Any]]) -> None:
        """Start the sidecars podman's restart policy gave up on (exit POD_GONE) once
        the instance whose network namespace each joins runs again."""
        running = {c["Id"] for c in containers if c.get("State") == "running"}
        for container in containers:
            # "stopped", not "exited", after podman's restart attempt failed.
            if container.get("State") not in ("exited", "stopped"):
                continue
            if container.get("ExitCode") != POD_GONE:
                continue
            # Inspected once per exit: (its policy restarts it, the namespace's owner).
            key = f"{container['Id']}@{container.get('ExitedAt')}"
            if key not in self.exits:
                inspected = self.engine.podman_json("inspect", container["Id"])
                host = inspected[0]["HostConfig"] if inspected else {}
                policy = (host.get("RestartPolicy") or {}).get("Name", "")
                mode = str(host.get("NetworkMode", ""))
                self.exits[key] = (
                    policy in ("always", "unless-stopped"),
                    mode.removeprefix("container:") if mode.startswith("container:") else "",
                )
            restarts, owner = self.exits[key]
            if restarts and owner in running:
                subprocess.run([*self.engine.podman, "start", container["Id"]],
                               capture_output=True, timeout=60, check=False)

    def tick(self) -> None:
        try:
            containers = self.engine.containers()
            self.restart_given_up(containers)
        except EngineError:
            return
        running = [c for c in containers if c.get("State") == "running"]
        now = time.monotonic()
        for container in running:
            ident = container["Id"]
            # Per start: a restarted container is in its start period again.
            run = f"{ident}@{container.get('StartedAt')}"
            try:
                start_interval, interval, start_until = self._schedule(ident, run)
            except EngineError:
                continue  # removed since the listing (down, a recreate)
            if interval == 0.0 or self.due.get(run, 0.0) > now:
                continue  # no healthcheck, or not yet due
            result = subprocess.run([*self.engine.podman, "healthcheck", "run", ident],
                                    capture_output=True, timeout=30, check=False)
            # The start interval until the first pass (or the start period's end).
            starting = result.returncode != 0 and now < start_until
            self.due[run] = now + (start_interval if starting or run not in self.passed
                                   else interval)
            if result.returncode == 0:
                self.passed.add(run)

    def run(self) -> None:
        while not self.halt.wait(0.5):
            # A podman command that failed or hung this round is tried again next round:
            # the ticker must outlive any one container (a thread that died here would
            # leave every container "starting" for good).
            with contextlib.suppress(EngineError, subprocess.TimeoutExpired):
                self.tick()


def free_subnet(engine: Engine, first: int = 1) -> str:
    """A /24 of 10.89.0.0/16, from 10.89.<first>.0 on, that overlaps no podman network and
    no route of the host: for a project beside docker-compose.yml's 10.89.0.0/24 (which
    `first=1` leaves to `make compose-up`)."""
    networks = engine.podman_json("network", "ls", "--format", "json")
    taken = [ipaddress.IPv4Network(s["subnet"], strict=False)
             for network in networks for s in network.get("subnets") or []
             if ":" not in s["subnet"]]
    routes = subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True,
                            check=False, timeout=10)
    taken += [ipaddress.IPv4Network(r["dst"], strict=False)
              for r in json.loads(routes.stdout or "[]") if r.get("dst", "default") != "default"]
    for third in range(first, 256):
        candidate = ipaddress.IPv4Network(f"10.89.{third}.0/24")
        if not any(candidate.overlaps(network) for network in taken):
            return str(candidate)
    raise EngineError("no free /24 left in 10.89.0.0/16 (podman network ls)")


def leftovers(engine: Engine) -> dict[str, list[str]]:
    """What of the project podman still holds: containers, networks, volumes."""
    label = f"label=com.docker.compose.project={engine.project}"
    out: dict[str, list[str]] = {}
    for kind, args in {
        "containers": ("ps", "-a", "--format", "json", "--filter", label),
        "networks": ("network", "ls", "--format", "json", "--filter", label),
        "volumes": ("volume", "ls", "--format", "json", "--filter", label),
    }.items():
        items: Sequence[dict[str, Any]] = engine.podman_json(*args)
        out[kind] = [str(i.get("Names") or i.get("Name") or i.get("name")) for i in items]
    return out
