"""`make run-local`: every built service of topology.toml on loopback, without the mesh.

Each instance runs as `python -m services.<name>` with MESHMART_PORT, MESHMART_INSTANCE_ID
and one MESHMART_UPSTREAM_<NAME> per upstream pointing at that upstream's FIRST instance
(there is no sidecar to load-balance yet). Services are started a dependency level at a
time (upstreams first) and each instance must answer the gRPC health check SERVING before
the next level starts. Ctrl-C / SIGTERM stops every child (SIGTERM, then SIGKILL after a
grace period). Data goes to .run/local/data, logs to .run/local/logs/<instance>.log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.config import ServiceConfig
from tools.mesh.topology import Service as ServiceEntry
from tools.mesh.topology import TopologyError, read_services

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class LaunchError(Exception):
    """The shop could not be started; the message says which instance and why."""


@dataclass(frozen=True)
class Instance:
    service: str
    number: int  # 1-based; instance N listens on port + N - 1
    port: int
    upstreams: Mapping[str, str] = field(default_factory=dict)  # name -> host:port

    @property
    def instance_id(self) -> str:
        return f"{self.service}-{self.number}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


def load_topology(path: Path) -> dict[str, ServiceEntry]:
    """The services of topology.toml (tools/mesh/topology.py reads them)."""
    try:
        return read_services(path)
    except TopologyError as error:
        raise LaunchError(str(error)) from None


def dependency_levels(topology: Mapping[str, ServiceEntry]) -> list[list[str]]:
    """Services grouped so that every service comes after all of its upstreams."""
    remaining = dict(topology)
    placed: set[str] = set()
    levels: list[list[str]] = []
    while remaining:
        level = sorted(n for n, e in remaining.items() if set(e.upstreams) <= placed)
        if not level:
            raise LaunchError(f"upstream cycle among: {', '.join(sorted(remaining))}")
        levels.append(level)
        placed.update(level)
        for name in level:
            del remaining[name]
    return levels


def is_built(name: str, root: Path = ROOT) -> bool:
    return (root / "services" / name / "__main__.py").is_file()


def instances_of(entry: ServiceEntry, topology: Mapping[str, ServiceEntry]) -> list[Instance]:
    upstreams = {u: f"{HOST}:{topology[u].port}" for u in entry.upstreams}
    return [
        Instance(entry.name, n, entry.port + n - 1, upstreams)
        for n in range(1, entry.instances + 1)
    ]


def child_env(instance: Instance, run_dir: Path, base: Mapping[str, str]) -> dict[str, str]:
    # Inherited MESHMART_* settings would silently point a child at the wrong place.
    env = {k: v for k, v in base.items() if not k.startswith("MESHMART_")}
    config = ServiceConfig(
        name=instance.service,
        host=HOST,
        port=instance.port,
        instance_id=instance.instance_id,
        run_dir=run_dir,
        # One data dir for all instances: instances of a service share its SQLite file,
        # as they share a database behind the mesh.
        data_dir=run_dir / "data",
        log_level=base.get("MESHMART_LOG_LEVEL", ServiceConfig.log_level),
        upstreams=instance.upstreams,
    )
    return {**env, "PYTHONUNBUFFERED": "1", **config.to_env()}


def port_is_free(port: int) -> bool:
    # A bind probe: fails while a server listens there, so a stale run cannot answer our
    # health checks in place of a new child. SO_REUSEADDR (as servers set it) keeps
    # connections of a previous run lingering in TIME_WAIT from counting as "in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


async def wait_serving(address: str, within: float) -> None:
    """Return once the server's overall health ("") is SERVING; the deadline bounds the wait.

    wait_for_ready keeps the RPC pending until the port accepts connections, and Watch
    streams status changes, so neither needs a polling loop.
    """
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=within, wait_for_ready=True
        )
        async for response in call:
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                call.cancel()
                return
    raise LaunchError(f"{address}: health stream ended before SERVING")


@dataclass
class Child:
    instance: Instance
    process: asyncio.subprocess.Process
    log_path: Path
    log_file: IO[bytes]


class LocalShop:
    def __init__(self, topology: Mapping[str, ServiceEntry], run_dir: Path, timeout: float):
        self.topology = topology
        self.run_dir = run_dir
        self.timeout = timeout
        self.children: list[Child] = []
        self.skipped: list[str] = []

    async def start_all(self) -> None:
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "data").mkdir(parents=True, exist_ok=True)
        for level in dependency_levels(self.topology):
            started: list[Child] = []
            for name in level:
                if not is_built(name):
                    self.skipped.append(name)
                    print(f"skip {name}: services/{name}/__main__.py does not exist yet")
                    continue
                for instance in instances_of(self.topology[name], self.topology):
                    started.append(await self._spawn(instance, logs))
            await asyncio.gather(*(self._wait_healthy(child) for child in started))

    async def _spawn(self, instance: Instance, logs: Path) -> Child:
        if not port_is_free(instance.port):
            raise LaunchError(f"{instance.instance_id}: port {instance.port} is already in use")
        log_path = logs / f"{instance.instance_id}.log"
        log_file = log_path.open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"services.{instance.service}",
            cwd=ROOT,
            env=child_env(instance, self.run_dir, os.environ),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            # Own session: Ctrl-C reaches only the launcher, which stops children in order.
            start_new_session=True,
        )
        child = Child(instance, process, log_path, log_file)
        self.children.append(child)
        return child

    async def _wait_healthy(self, child: Child) -> None:
        health = asyncio.create_task(wait_serving(child.instance.address, self.timeout))
        exited = asyncio.create_task(child.process.wait())
        try:
            done, _ = await asyncio.wait({health, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (health, exited):
                task.cancel()
        if health in done and health.exception() is None:
            return
        if exited in done:
            reason = f"exited with code {child.process.returncode}"
        else:
            reason = f"not SERVING within {self.timeout:g}s ({health.exception()!r})"
        raise LaunchError(f"{child.instance.instance_id}: {reason}; see {child.log_path}")

    def table(self) -> str:
        rows = [("instance", "address", "pid", "log")]
        for c in self.children:
            log = os.path.relpath(c.log_path, Path.cwd())
            rows.append((c.instance.instance_id, c.instance.address, str(c.process.pid), log))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(line.rstrip() for line in lines)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Wait for Ctrl-C/SIGTERM, reporting any child that dies on its own meanwhile."""
        watchers: dict[asyncio.Future[Any], Child] = {
            asyncio.ensure_future(c.process.wait()): c for c in self.children
        }
        pending: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait()), *watchers}
        try:
            while not stop.is_set():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    child = watchers.get(task)
                    if child is not None:
                        print(
                            f"{child.instance.instance_id} exited with code "
                            f"{child.process.returncode}; see {child.log_path}",
                            file=sys.stderr,
                        )
        finally:
            for task in pending:
                task.cancel()

    async def stop_all(self, grace: float = 10.0) -> None:
        # All at once: each child drains its own in-flight RPCs (kit serve()), and a local
        # run has no clients worth a slower level-by-level stop.
        running = [c for c in self.children if c.process.returncode is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        if running:
            _, late = await asyncio.wait(
                [asyncio.create_task(c.process.wait()) for c in running], timeout=grace
            )
            if late:
                for child in running:
                    if child.process.returncode is None:
                        print(f"{child.instance.instance_id}: no exit after {grace:g}s, killing")
                        with contextlib.suppress(ProcessLookupError):
                            child.process.kill()
                await asyncio.gather(*(c.process.wait() for c in running))
        for child in self.children:
            child.log_file.close()


async def run(args: argparse.Namespace) -> int:
    topology = load_topology(args.topology)
    shop = LocalShop(topology, args.run_dir, args.timeout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        startup = asyncio.create_task(shop.start_all())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({startup, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if startup not in done:
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError, LaunchError):
                await startup
            print("interrupted during startup; stopping")
            return 130
        stopper.cancel()
        try:
            startup.result()
        except LaunchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(shop.table())
        if shop.skipped:
            print(f"not built yet (skipped): {', '.join(shop.skipped)}")
        print("all instances SERVING; Ctrl-C stops them")
        await shop.supervise(stop)
        print("stopping...")
        return 0
    finally:
        await shop.stop_all()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--topology", type=Path, default=ROOT / "topology.toml")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run" / "local")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds each instance has to become SERVING"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return asyncio.run(run(args))
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
