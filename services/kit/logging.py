"""Structured logging: one JSON object per line on stderr.

Every line carries timestamp, level, service, instance and, inside an RPC, request_id,
trace_id and span_id (with tracing on; without, the trace_id the caller sent, if any).
The standard library's logging (grpc, asyncio) is routed through the same renderer so
nothing escapes as plain text. Lines are rendered by orjson (one renderer for both).

The access log (one line per RPC, services/kit/interceptors.py) is written by
``AccessLog``: the same processors make the same fields, without structlog's per-call
logger machinery (about half of a line's cost: bench/TUNING.md g.).
"""

from __future__ import annotations

import json
import logging as stdlib_logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import orjson
import structlog
from opentelemetry import trace

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
    # The current span (services/kit/tracing.py) names this line's place in its trace;
    # without tracing, the trace id the caller sent.
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event.setdefault("trace_id", f"{span.trace_id:032x}")
        event.setdefault("span_id", f"{span.span_id:016x}")
    else:
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


def _dumps(event: Any, **kw: Any) -> str:
    """JSON text of a log event: orjson (a tenth of json.dumps's time), or the standard
    library for what orjson refuses (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(event, default=kw.get("default"),
                            option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(event, **kw)


def _renderer() -> structlog.processors.JSONRenderer:
    return structlog.processors.JSONRenderer(serializer=_dumps)


_LEVELS = stdlib_logging.getLevelNamesMapping()
# Method name -> level, for the dynamic level filter below.
_METHOD_LEVELS = {
    "debug": stdlib_logging.DEBUG,
    "info": stdlib_logging.INFO,
    "msg": stdlib_logging.INFO,
    "warning": stdlib_logging.WARNING,
    "warn": stdlib_logging.WARNING,
    "error": stdlib_logging.ERROR,
    "exception": stdlib_logging.ERROR,
    "critical": stdlib_logging.CRITICAL,
    "fatal": stdlib_logging.CRITICAL,
}
_threshold = [stdlib_logging.INFO]


def _filter_level(_: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # The level lives here, not in the logger class, so loggers can be cached on first
    # use (cheap per call) and still follow a later configure_logging().
    if _METHOD_LEVELS.get(method, stdlib_logging.INFO) < _threshold[0]:
        raise structlog.DropEvent
    return event


def _configure_structlog() -> None:
    structlog.configure(
        processors=[
            _filter_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            _render_exceptions,
            _renderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(stdlib_logging.NOTSET),
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _STDERR)),
        cache_logger_on_first_use=True,
    )
    handler = stdlib_logging.StreamHandler(cast(TextIO, _STDERR))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_shared_processors()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _render_exceptions,
                _renderer(),
            ],
        )
    )
    stdlib_logging.getLogger().handlers[:] = [handler]


def configure_logging(service: str, instance: str | None = None, level: str = "INFO") -> None:
    """Set this process's identity and level; safe to call more than once."""
    _identity["service"] = service
    _identity["instance"] = instance or service
    _threshold[0] = _LEVELS.get(level.upper(), stdlib_logging.INFO)
    stdlib_logging.getLogger().setLevel(_threshold[0])


def get_logger(name: str | None = None, **initial: Any) -> structlog.typing.FilteringBoundLogger:
    """A structured logger; ``name`` ends up as the "logger_name" key."""
    if name is not None:
        initial["logger_name"] = name
    return cast(structlog.typing.FilteringBoundLogger, structlog.get_logger(**initial))


class AccessLog:
    """The access-log line of an RPC: what ``get_logger(name).info(event, **fields)``
    writes (the same processors, in the same order, so the same keys: logger_name, the
    fields, event, level, timestamp, service, instance, request_id, trace_id, span_id),
    called directly instead of through structlog's bound logger."""

    def __init__(self, name: str, event: str = "rpc") -> None:
        self._name = name
        self._event = event
        self._processors = _shared_processors()
        self._render = _renderer()

    def line(self, fields: dict[str, Any], *, level: str = "info") -> None:
        """Write ``fields`` as one line at ``level`` (dropped below the threshold)."""
        if _METHOD_LEVELS[level] < _threshold[0]:
            return
        event: dict[str, Any] = {"logger_name": self._name, **fields, "event": self._event}
        for processor in self._processors:
            event = processor(None, level, event)
        _STDERR.write(cast(str, self._render(None, level, event)) + "\n")
        _STDERR.flush()


# Configured at import, before any logger can be used, so even a ConfigError at start-up
# is logged as JSON; serve() later sets the service's identity and level.
_configure_structlog()
configure_logging("meshmart")
