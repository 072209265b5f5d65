"""Run docker-compose.yml's containers without Docker: each pod in a network namespace.

There is no Docker engine on our machines, so the images cannot run here; but what the
compose file *wires* can: every container's command and environment, its address on the
`mesh` network, the pods (a sidecar in its instance's network namespace), the
healthchecks and the start order they give. This runner takes the file as the compose
binary reads it (`docker-compose config --format json`) and starts the chosen
containers (and what they depend on) as local processes, one network namespace per pod,
joined by a bridge inside a namespace of its own (nothing touches the host's network):

- an image is replaced by the same program from the repository's setup: the consul,
  nats-server and Envoy binaries of .venv/bin, `python` of the venv for the meshmart
  images, docker/sidecar-entrypoint.sh for the sidecar image; the Go canary's binary is
  .venv/bin/<service>-go (its healthcheck needs grpc-health-probe on PATH);
- a container path is a folder of the run (<run>/fs/<container>/...), a named volume a
  folder shared by the containers that mount it, a bind mount the repository's file;
- container names resolve through /etc/netns/<namespace>/hosts (`ip netns exec` mounts
  it over /etc/hosts for the process), as Docker's DNS resolves them.

The namespaces, veths and bridge are the mesh's pod runner's (tools/mesh/pods.py), with
the bridge in a namespace of its own here.

Linux and root only (network namespaces). Used by tests/compose/test_pods.py:
    python -m tools.compose.pods edge-1 cart-1     # start them and what they need, wait
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.mesh.pods import PodError as MeshPodError
from tools.mesh.pods import PodNetwork
from tools.mesh.topology import ROOT

BIN = ROOT / ".venv" / "bin"
IMAGE_ROOT = "/var/lib/meshmart"  # what the meshmart images keep state under


class PodError(Exception):
    """A container failed, or did not become healthy in time; the message says which."""


def compose_config(compose_bin: Path, config_dir: Path) -> dict[str, Any]:
    """The compose file as the compose binary normalizes it."""
    result = subprocess.run(
        [str(compose_bin), "-f", str(ROOT / "docker-compose.yml"),
         "--project-directory", str(ROOT), "config", "--format", "json"],
        capture_output=True, text=True, check=False, timeout=60, cwd=ROOT,
        env={**os.environ, "DOCKER_CONFIG": str(config_dir)},
    )
    if result.returncode != 0:
        raise PodError(f"docker-compose config failed: {result.stderr.strip()}")
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@dataclass
class PodRun:
    config: dict[str, Any]
    run_dir: Path
    prefix: str = field(default_factory=lambda: f"mm{os.getpid() % 100000}")
    timeout: float = 120.0
    extra_path: Sequence[Path] = ()
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _network: PodNetwork | None = None

    @property
    def services(self) -> dict[str, Any]:
        services: dict[str, Any] = self.config["services"]
        return services

    # --- which containers, in which order -------------------------------------------
    def closure(self, wanted: Sequence[str]) -> list[str]:
        """``wanted`` and everything they depend on, dependencies first (compose's order)."""
        order: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in order:
                return
            if name in path:
                raise PodError(f"dependency cycle: {' -> '.join((*path, name))}")
            for dependency in self.services[name].get("depends_on") or {}:
                visit(dependency, (*path, name))
            order.append(name)

        for name in wanted:
            visit(name, ())
        return order

    def pod_of(self, name: str) -> str:
        mode = self.services[name].get("network_mode", "")
        return self.pod_of(mode.removeprefix("service:")) if mode.startswith("service:") else name

    def namespace(self, name: str) -> str:
        return self.pod_network.namespace(self.pod_of(name))

    def address(self, name: str) -> str:
        address: str = self.services[self.pod_of(name)]["networks"]["mesh"]["ipv4_address"]
        return address

    # --- the network (tools/mesh/pods.py, the mesh's own pod runner) ------------------
    @property
    def pod_network(self) -> PodNetwork:
        if self._network is None:
            subnet = self.config["networks"]["mesh"]["ipam"]["config"][0]["subnet"]
            # The bridge in a namespace of its own: nothing touches the host's network.
            self._network = PodNetwork(prefix=self.prefix, subnet=ipaddress.IPv4Network(subnet),
                                       bridge_namespace=f"{self.prefix}-net")
        return self._network

    def network(self, names: Sequence[str]) -> None:
        pods = sorted({self.pod_of(n) for n in names})
        try:
            self.pod_network.create({pod: self.address(pod) for pod in pods})
        except MeshPodError as error:
            raise PodError(str(error)) from None

    # --- files ------------------------------------------------------------------------
    def root_of(self, name: str) -> Path:
        return self.run_dir / "fs" / name

    def prepare_files(self, name: str) -> None:
        root = self.root_of(name)
        for directory in ("data", "run/keys", "run/mail"):  # as the Dockerfile creates them
            (root / IMAGE_ROOT.lstrip("/") / directory).mkdir(parents=True, exist_ok=True)
        for mount in self.services[name].get("volumes") or []:
            if mount["type"] == "bind":
                source = Path(mount["source"])
            else:  # a named volume: one folder for every container that mounts it
                source = self.run_dir / "volumes" / mount["source"]
                source.mkdir(parents=True, exist_ok=True)
            target = root / mount["target"].lstrip("/")
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)

    def local_path(self, name: str, value: str) -> str:
        """A container path in a command or variable -> where it is in this run."""
        value = value.replace("$$", "$")  # compose's escape, undone as Docker would
        prefixes = [IMAGE_ROOT] + [m["target"] for m in self.services[name].get("volumes") or []]
        for prefix in sorted(set(prefixes), key=len, reverse=True):
            if prefix in value:
                return value.replace(prefix, str(self.root_of(name) / prefix.lstrip("/")))
        return value

    # --- processes --------------------------------------------------------------------
    def argv(self, name: str) -> list[str]:
        service = self.services[name]
        image: str = service["image"]
        command = [self.local_path(name, c) for c in service.get("command") or []]
        entrypoint = [self.local_path(name, c) for c in service.get("entrypoint") or []]
        if image.startswith("hashicorp/consul:"):
            if entrypoint:
                return [*entrypoint, *command]
            # The image's entrypoint adds the data directory (a volume there).
            return ["consul", *command, f"-data-dir={self.run_dir / 'consul-data' / name}"]
        if image.startswith("nats:"):
            return ["nats-server", *command]  # the image's entrypoint, for flag arguments
        if image.startswith("meshmart/sidecar:"):
            return [str(ROOT / "docker" / "sidecar-entrypoint.sh"), *command]
        if image.startswith("meshmart/") and image.split(":")[0].endswith("-go"):
            return [str(BIN / image.split(":")[0].removeprefix("meshmart/"))]
        if image.startswith("meshmart/"):
            return command
        raise PodError(f"{name}: no local stand-in for the image {image}")

    def environment(self, name: str) -> dict[str, str]:
        path = ":".join([str(BIN), *map(str, self.extra_path), "/usr/bin", "/bin"])
        env = {
            "PATH": path,
            "HOME": str(self.run_dir),
            "TMPDIR": str(self.run_dir / "tmp"),
            # What the meshmart images set (Dockerfile ENV).
            "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
            "PYTHONUNBUFFERED": "1",
            "MESHMART_DATA_DIR": str(self.root_of(name) / "var/lib/meshmart/data"),
            "MESHMART_RUN_DIR": str(self.root_of(name) / "var/lib/meshmart/run"),
        }
        for key, value in (self.services[name].get("environment") or {}).items():
            env[key] = self.local_path(name, str(value))
        return env

    def start(self, name: str) -> None:
        self.prepare_files(name)
        (self.run_dir / "tmp").mkdir(parents=True, exist_ok=True)
        with (self.run_dir / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace(name), *self.argv(name)],
                env=self.environment(name), stdout=log, stderr=subprocess.STDOUT,
                cwd=self.run_dir, start_new_session=True,
            )

    def healthy(self, name: str) -> bool:
        test = self.services[name]["healthcheck"]["test"]
        if test[0] == "CMD-SHELL":
            # busybox's wget in the official images; curl here.
            command = ["sh", "-c", test[1].replace("wget -qO-", "curl -fsS")]
        else:
            command = list(test[1:])
        env = self.environment(name)
        if "network_mode" in self.services[name]:  # a sidecar: probes run in its pod
            env.update(self.environment(self.pod_of(name)))
        try:
            result = subprocess.run(
                ["ip", "netns", "exec", self.namespace(name), *command], env=env,
                capture_output=True, timeout=10, check=False, cwd=self.run_dir,
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def wait(self, name: str) -> float:
        """Until the container meets what its dependents wait for; seconds it took."""
        started = time.monotonic()
        one_shot = self.services[name].get("restart") == "no"
        process = self.processes[name]
        while time.monotonic() - started < self.timeout:
            code = process.poll()
            if one_shot and code is not None:
                if code != 0:
                    raise PodError(f"{name} exited {code}: {self.tail(name)}")
                return time.monotonic() - started
            if code is not None:
                raise PodError(f"{name} exited {code}: {self.tail(name)}")
            if not one_shot and self.healthy(name):
                return time.monotonic() - started
            time.sleep(0.25)
        raise PodError(f"{name} not ready after {self.timeout:.0f}s: {self.tail(name)}")

    def tail(self, name: str, lines: int = 15) -> str:
        text = (self.run_dir / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def up(self, wanted: Sequence[str]) -> dict[str, float]:
        """Start ``wanted`` and their dependencies in order; seconds each took to be ready."""
        order = self.closure(wanted)
        self.network(order)
        ready = {}
        for name in order:
            self.start(name)
            ready[name] = self.wait(name)
        return ready

    def run_in(self, name: str, command: Sequence[str], timeout: float = 30) -> (
            subprocess.CompletedProcess[str]):
        """A command in ``name``'s pod, with its environment (like `docker compose exec`)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace(name), *command], env=self.environment(name),
            capture_output=True, text=True, timeout=timeout, check=False, cwd=self.run_dir,
        )

    def down(self) -> None:
        """Stop every process (SIGTERM, as docker stop), then remove the namespaces."""
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.pod_network.destroy()


@contextlib.contextmanager
def pods(config: dict[str, Any], run_dir: Path, wanted: Sequence[str],
         **options: Any) -> Iterator[tuple[PodRun, dict[str, float]]]:
    run = PodRun(config=config, run_dir=run_dir, **options)
    try:
        ready = run.up(wanted)
        yield run, ready
    finally:
        run.down()


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or ["edge-1"]
    run_dir = ROOT / ".run" / "pods"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    try:
        config = compose_config(BIN / "docker-compose", run_dir / "docker-config")
        with pods(config, run_dir, names) as (_, ready):
            for name, seconds in ready.items():
                sys.stdout.write(f"{name:<28} ready after {seconds:5.1f}s\n")
    except PodError as error:
        sys.stderr.write(f"error: {error}\n(logs in {run_dir})\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
