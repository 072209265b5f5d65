"""Structured logging: one JSON object per line on stderr.

Every line carries timestamp, level, service, instance and, inside an RPC, request_id
(and trace_id when the caller sent a traceparent). The standard library's logging (grpc,
asyncio) is routed through the same renderer so nothing escapes as plain text.
"""

from __future__ import annotations

import logging as stdlib_logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

from services.kit import context

_identity = {"service": "meshmart", "instance": "meshmart"}
# Tracebacks as JSON, without local variables: locals can hold passwords and card numbers.
_render_exceptions = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


class _CurrentStderr:
    """Writes to whatever sys.stderr is at write time (test capture swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _CurrentStderr()


def _add_identity(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("service", _identity["service"])
    event.setdefault("instance", _identity["instance"])
    return event


def _add_request(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request_id = context.current_request_id()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    trace_id = context.current_trace_id()
    if trace_id is not None:
        event.setdefault("trace_id", trace_id)
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_identity,
        _add_request,
    ]


def configure_logging(service: str, instance: str | None = None, level: str = "INFO") -> None:
    """(Re)configure logging for this process; safe to call more than once."""
    _identity["service"] = service
    _identity["instance"] = instance or service
    numeric_level = stdlib_logging.getLevelNamesMapping().get(level.upper(), stdlib_logging.INFO)

    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            _render_exceptions,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _STDERR)),
        # Not cached: loggers created at import time must pick up the later configuration.
        cache_logger_on_first_use=False,
    )

    handler = stdlib_logging.StreamHandler(cast(TextIO, _STDERR))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_shared_processors()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _render_exceptions,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = stdlib_logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)


def get_logger(name: str | None = None, **initial: Any) -> structlog.typing.FilteringBoundLogger:
    """A structured logger; ``name`` ends up as the "logger_name" key."""
    if name is not None:
        initial["logger_name"] = name
    # A lazy proxy: it resolves the configuration at each call, so module-level loggers
    # created before configure_logging() still honour the service's level and identity.
    return cast(structlog.typing.FilteringBoundLogger, structlog.get_logger(**initial))


# Sensible defaults before a service configures itself (e.g. a ConfigError at start-up).
configure_logging("meshmart")
