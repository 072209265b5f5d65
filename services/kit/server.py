"""serve(): the one way a meshmart service runs.

A service's ``app.build(config, stack)`` opens its resources onto ``stack`` as it goes
(``opened``) and returns a ``Service``: its specs and hooks. ``serve`` owns that one
AsyncExitStack, so a build that fails halfway closes what it had opened. It builds a
grpc.aio server with the kit interceptor, the official health service ("" and each
service) and reflection listing the services; then, on SIGTERM/SIGINT: health
NOT_SERVING -> on_stop hooks (deregistration) -> drain delay -> stop(grace) -> the
resources closed, the last opened first. ``main(name, build)`` is a service's whole
``__main__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.kit import loop_watch
from services.kit.config import ConfigError, ServiceConfig, env_int, env_str, load_config
from services.kit.interceptors import ServiceInterceptor
from services.kit.logging import configure_logging, get_logger
from services.kit.metrics import metrics_port_setting, start_metrics_endpoint
from services.kit.registration import advertised_host, mesh_hooks
from services.kit.tracing import Tracing, configure_tracing

if TYPE_CHECKING:
    from services.kit.events import ServiceEvents

try:  # the asyncio servicer ships with grpcio-health-checking >= 1.32
    from grpc_health.v1.health import aio as _health_aio

    _HealthServicer: Any = _health_aio.HealthServicer
except ImportError:  # pragma: no cover - depends on the installed version
    from grpc_health.v1 import _async as _health_async

    _HealthServicer = _health_async.HealthServicer

log = get_logger("meshmart.server")

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
HOOK_TIMEOUT_SECONDS = 5.0
Hook = Callable[[], Awaitable[None]]

_SERVER_OPTIONS = [
    # Without this gRPC sets SO_REUSEPORT, and a second process on the same port would
    # silently share it instead of failing to start.
    ("grpc.so_reuseport", 0),
]


@dataclass(frozen=True)
class ServiceSpec:
    """One gRPC service to serve: its full name and how to add it to a server."""

    name: str  # e.g. "meshmart.catalog.v1.CatalogService"
    add: Callable[[grpc.aio.Server], None]


class Resource(Protocol):
    """Something a service closes after serving: a Database, a channel, ServiceEvents."""

    def close(self) -> Any: ...  # None, or an awaitable (grpc.aio.Channel.close)


R = TypeVar("R", bound=Resource)


@dataclass(frozen=True)
class Service:
    """What a service's ``build(config, stack)`` returns, for serve() (and the tests) to
    run: once the server is SERVING, ``events`` (its bus, outbox relay and consumers) is
    started, then the on_start hooks run; on_stop hooks right after health turns
    NOT_SERVING. (``events`` is closed with the resources: the build opens it.)"""

    specs: Sequence[ServiceSpec]
    on_start: Sequence[Hook] = ()
    on_stop: Sequence[Hook] = ()
    events: ServiceEvents | None = None
    grace_seconds: float = 10.0

    @property
    def starting(self) -> list[Hook]:
        """What runs once SERVING, in order: the events, then the on_start hooks."""
        return [*([] if self.events is None else [self.events.start]), *self.on_start]


# A service's build: opens its resources onto the stack (``opened``) and returns what it
# serves. serve() and kit.testing.running_service own the stack and unwind it after the
# server has stopped, or at once when the build raises.
Build = Callable[[ServiceConfig, contextlib.AsyncExitStack], Service]


def opened(stack: contextlib.AsyncExitStack, resource: R) -> R:
    """``resource``, just opened: closed when ``stack`` unwinds, after the server has
    stopped (in-flight RPCs drained), the last opened first. Call it right after opening,
    so a build that fails further on still closes it."""
    stack.push_async_callback(close_resource, resource)
    return resource


async def close_resource(resource: Resource) -> None:
    result = resource.close()
    if inspect.isawaitable(result):
        await result


class StartupError(RuntimeError):
    """The server could not start (e.g. the port is taken)."""


@dataclass
class BuiltServer:
    server: grpc.aio.Server
    health: Any  # grpc_health.v1.health.aio.HealthServicer
    port: int
    service_names: tuple[str, ...]

    async def set_serving(self) -> None:
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)


def build_server(
    specs: Sequence[ServiceSpec],
    address: str,
    tracing: Tracing | None = None,
    inner: Sequence[grpc.aio.ServerInterceptor] = (),
    user_asserters: frozenset[str] | None = None,
) -> BuiltServer:
    """A server with the specs, health, reflection and the interceptor, bound to address
    (with ``tracing``, OpenTelemetry's server interceptor first, so its span is current
    in the kit's interceptor and the handler). ``inner`` interceptors run inside the
    kit's, right around the handlers (tests hold calls there). ``user_asserters``: who
    may assert an end user (ServiceConfig.user_asserters)."""
    interceptors: list[Any] = [] if tracing is None else [tracing.server_interceptor()]
    interceptors.append(ServiceInterceptor(user_asserters))
    interceptors.extend(inner)
    server = grpc.aio.server(interceptors=interceptors, options=_SERVER_OPTIONS)
    for spec in specs:
        spec.add(server)
    health = _HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = tuple(spec.name for spec in specs)
    reflection.enable_server_reflection((*names, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    try:
        port = int(server.add_insecure_port(address))
    except RuntimeError as error:
        raise StartupError(f"cannot listen on {address}: {error}") from error
    return BuiltServer(server=server, health=health, port=port, service_names=names)


async def serve(config: ServiceConfig, build: Build) -> None:
    """Build the service and serve it on config.host:config.port until SIGTERM/SIGINT,
    then shut down gracefully and close its resources (also when building or starting
    fails)."""
    configure_logging(config.name, config.instance_id, config.log_level)
    # Prometheus /metrics (services/kit/metrics.py) when MESHMART_METRICS_PORT is set; its
    # port goes into the Consul registration, where Prometheus discovers it.
    metrics_port = metrics_port_setting()
    if metrics_port is not None:
        # On the address Prometheus reaches (in a pod: the pod's, not its loopback).
        endpoint = start_metrics_endpoint(advertised_host(config), metrics_port)
        metrics_port = endpoint.port
        log.info("metrics.serving", url=endpoint.url)
    # Mesh: register in Consul once SERVING, deregister before the drain; no-op unless
    # MESHMART_CONSUL_HTTP_ADDR is set (services/kit/registration.py, owned by tools/mesh).
    mesh_start, mesh_stop = mesh_hooks(config, metrics_port=metrics_port)
    if mesh_start and database_behind_sidecar(config):
        # The database is reached through this instance's own sidecar (a mesh on
        # PostgreSQL, tools/mesh/postgres.py), and a sidecar starts only once its instance
        # is registered: register before the build opens the database. Consul's gRPC check
        # fails until the server is SERVING, so no caller is routed here before that.
        for hook in mesh_start:
            await hook()
        mesh_start = []
    async with contextlib.AsyncExitStack() as stack:
        await _serve(config, build(config, stack), mesh_start, mesh_stop)


def database_behind_sidecar(config: ServiceConfig) -> bool:
    """Whether the service's database URL is one of its sidecar's upstream listeners."""
    if not config.database_url:
        return False
    netloc = urlsplit(config.database_url).netloc.rpartition("@")[2]
    return netloc in set(config.upstreams.values())


async def _serve(
    config: ServiceConfig, service: Service, mesh_start: list[Hook], mesh_stop: list[Hook]
) -> None:
    # Spans to Zipkin when MESHMART_ZIPKIN_URL is set (services/kit/tracing.py).
    tracing = configure_tracing(config)
    built = build_server(
        service.specs, config.address, tracing, user_asserters=config.user_asserters
    )
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop_requested, signum)

    await built.server.start()
    await built.set_serving()
    log.info("server.started", address=config.address, services=list(built.service_names),
             event_loop=type(loop).__module__.split(".")[0])
    try:
        for hook in [*service.starting, *mesh_start]:
            await hook()
        # Only a signal ends serving. (Not server.wait_for_termination(): cancelling that
        # waiter cancels grpc's own shutdown future and aborts in-flight RPCs.)
        await stop_requested.wait()
    finally:
        await _shutdown(built, config, [*mesh_stop, *service.on_stop], service.grace_seconds)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)  # export the last batch


def _request_stop(stop_requested: asyncio.Event, signum: int) -> None:
    if stop_requested.is_set():
        log.info("server.signal_ignored", signal=signal.Signals(signum).name, reason="stopping")
        return
    log.info("server.signal", signal=signal.Signals(signum).name)
    stop_requested.set()


async def _shutdown(
    built: BuiltServer, config: ServiceConfig, on_stop: list[Hook], grace: float
) -> None:
    # Order matters: stop advertising first, then leave the registry, then give load
    # balancers time to notice while still answering, and only then stop accepting.
    await built.health.enter_graceful_shutdown()
    log.info("server.draining", drain_seconds=config.drain_seconds, grace_seconds=grace)
    for hook in on_stop:
        try:
            # Bounded: a registry that does not answer must not keep a stopping process
            # alive until the supervisor's SIGKILL.
            async with asyncio.timeout(HOOK_TIMEOUT_SECONDS):
                await hook()
        except Exception:
            # A failed deregistration must not prevent a clean stop; Consul's check
            # will mark the instance critical anyway.
            log.exception("server.on_stop_failed", hook=getattr(hook, "__name__", repr(hook)))
    await asyncio.sleep(config.drain_seconds)
    log.info("server.stopping", grace_seconds=grace)
    await built.server.stop(grace)
    log.info("server.stopped")


EVENT_LOOP_SETTING = "MESHMART_EVENT_LOOP"


def event_loop_factory(
    env: Mapping[str, str] | None = None,
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``run`` uses, from MESHMART_EVENT_LOOP: "asyncio" (the default,
    asyncio's own loop) or "uvloop" (libuv's loop: about 11% less CPU per call for a
    catalog process, bench/TUNING.md c.; opt-in until the mesh and chaos suites have run
    on it). None means asyncio's default."""
    name = env_str(EVENT_LOOP_SETTING, "asyncio", env=env).lower()
    if name == "asyncio":
        return None
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise ConfigError(f"{EVENT_LOOP_SETTING} must be asyncio or uvloop, got {name!r}")


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> NoReturn:
    """Entry point of ``python -m services.<name>``: run ``main`` and exit.

    Exit codes: 0 after a clean shutdown, 2 for a configuration error (the message names
    the setting), 1 if the server could not start or main crashed, 130 on Ctrl-C before
    serving.
    """
    try:
        slow_callback_ms = env_int(loop_watch.SETTING, 0, minimum=0)
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            if slow_callback_ms:
                loop_watch.watch(runner.get_loop(), slow_callback_ms)
            runner.run(main())
    except ConfigError as error:
        log.error("config.invalid", error=str(error))
        sys.stderr.flush()
        sys.exit(2)
    except StartupError as error:
        log.error("server.start_failed", error=str(error))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        # Still one JSON object per line, so the crash is found with the service's logs.
        log.exception("service.crashed")
        sys.exit(1)
    sys.exit(0)


def main(name: str, build: Build) -> NoReturn:
    """A service's whole ``__main__``: ``main("catalog", build)`` reads the config of
    ``name``, builds the service and serves it (exit codes: see ``run``)."""

    async def serve_built() -> None:
        await serve(load_config(name), build)

    run(serve_built)
