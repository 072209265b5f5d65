"""Test helpers: real in-process gRPC servers built exactly like serve() builds them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import grpc

from services.kit.config import ServiceConfig
from services.kit.logging import configure_logging
from services.kit.server import Build, ServiceSpec, build_server
from services.kit.tracing import Tracing


def config_for_tests(
    name: str = "test",
    *,
    data_dir: Path | str = Path(".run/test-data"),
    upstreams: Mapping[str, str] | None = None,
    port: int = 1,
    user_asserters: frozenset[str] | None = None,
) -> ServiceConfig:
    """A ServiceConfig without touching the environment (port is a placeholder)."""
    return ServiceConfig(
        name=name,
        port=port,
        data_dir=Path(data_dir),
        run_dir=Path(data_dir).parent,
        log_level="DEBUG",
        drain_seconds=0.0,
        upstreams=dict(upstreams or {}),
        user_asserters=user_asserters,
    )


@asynccontextmanager
async def running_server(
    specs: Sequence[ServiceSpec],
    config: ServiceConfig | None = None,
    tracing: Tracing | None = None,
    inner: Sequence[grpc.aio.ServerInterceptor] = (),
) -> AsyncIterator[str]:
    """Serve ``specs`` on 127.0.0.1 on a free port; yields the target "127.0.0.1:<port>".

    The port is chosen by the kernel at bind time (port 0), so there is no race with
    other tests, and the server is listening before the body runs.
    """
    if config is not None:
        configure_logging(config.name, config.instance_id, config.log_level)
    built = build_server(
        specs, "127.0.0.1:0", tracing, inner,
        user_asserters=None if config is None else config.user_asserters,
    )
    await built.server.start()
    await built.set_serving()
    try:
        yield f"127.0.0.1:{built.port}"
    finally:
        await built.server.stop(None)


@asynccontextmanager
async def running_service(
    config: ServiceConfig, build: Build, inner: Sequence[grpc.aio.ServerInterceptor] = ()
) -> AsyncIterator[str]:
    """A service's ``build`` served as serve() serves it, on a free port of 127.0.0.1:
    on_start hooks once SERVING; on leaving, on_stop hooks, the server stopped at once
    (no drain: a test ends like a killed process) and the resources closed, the last
    opened first (at once if ``build`` raises). Yields the target."""
    async with AsyncExitStack() as stack:
        service = build(config, stack)
        target = await stack.enter_async_context(running_server(service.specs, inner=inner))
        for hook in service.starting:
            await hook()
        for hook in reversed(service.on_stop):
            stack.push_async_callback(hook)
        yield target
