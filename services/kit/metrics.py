"""Prometheus metrics of a service process: RED per gRPC method and code, plus its own.

The kit's interceptor records every RPC here (rate and errors from
``grpc_server_handled_total``, duration from ``grpc_server_handling_seconds``; names and
labels as go-grpc-prometheus, so common dashboards and rules apply). Services add their
domain figures with the usual prometheus_client types (``Counter("meshmart_orders_...")``)
on the default registry.

serve() exposes everything on ``MESHMART_METRICS_PORT`` (``/metrics``, same host as the
gRPC port; 0 = a free port) and the Consul registration announces the port in its meta
(``metrics_port``), which is how Prometheus finds it (prometheus/, Consul SD). Unset:
no endpoint (unit tests, `make run-local` unless asked).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

from services.kit.config import env_int

# Codes that mean the server failed, as opposed to a caller's mistake (NOT_FOUND,
# INVALID_ARGUMENT, FAILED_PRECONDITION...) or a caller giving up (CANCELLED). The
# error-ratio recording rule in prometheus/rules/ uses the same list.
SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

# Seconds. A unary call here takes 0.3-3 ms; the saga's PlaceOrder up to seconds. Fine
# at the bottom so a p99 of a few milliseconds is not rounded to the next bucket.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


# Label values as gRPC spells the codes elsewhere (Go's code.String(): "OK", "NotFound").
CODE_NAMES = {
    code: "OK" if code is grpc.StatusCode.OK
    else "".join(part.capitalize() for part in code.name.split("_"))
    for code in grpc.StatusCode
}


def code_name(code: grpc.StatusCode) -> str:
    return CODE_NAMES[code]


def split_method(method: str) -> tuple[str, str]:
    """"/pkg.Service/Method" -> ("pkg.Service", "Method")."""
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class RpcMetrics:
    """The RED metrics of the server side. One per registry (the process default)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
            registry=registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from receiving an RPC to its status, by method.",
            ["grpc_service", "grpc_method", "grpc_type"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # Labelled children cached by key: labels() costs a lock and a dict lookup per
        # call, and the interceptor runs on every RPC.
        self._counters: dict[tuple[str, str, grpc.StatusCode], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, kind: str, code: grpc.StatusCode, seconds: float) -> None:
        counter = self._counters.get((method, kind, code))
        if counter is None:
            service, name = split_method(method)
            counter = self.handled.labels(service, name, kind, code_name(code))
            self._counters[(method, kind, code)] = counter
        counter.inc()
        histogram = self._histograms.get((method, kind))
        if histogram is None:
            service, name = split_method(method)
            histogram = self.handling.labels(service, name, kind)
            self._histograms[(method, kind)] = histogram
        histogram.observe(seconds)


_rpc_metrics: list[RpcMetrics] = []


def rpc_metrics() -> RpcMetrics:
    """The process's RPC metrics on the default registry (created on first use: a metric
    name can be registered only once per registry)."""
    if not _rpc_metrics:
        _rpc_metrics.append(RpcMetrics())
    return _rpc_metrics[0]


@dataclass(frozen=True)
class MetricsEndpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"


def metrics_port_setting(env: Mapping[str, str] | None = None) -> int | None:
    """MESHMART_METRICS_PORT (0 = any free port), or None when unset."""
    port = env_int("MESHMART_METRICS_PORT", -1, minimum=-1, maximum=65535, env=env)
    return None if port < 0 else port


def start_metrics_endpoint(
    host: str, port: int, registry: CollectorRegistry = REGISTRY
) -> MetricsEndpoint:
    """Serve ``registry`` at http://host:port/metrics from a daemon thread (prometheus
    client's own server: a scrape never waits on the event loop)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return MetricsEndpoint(host=host, port=int(server.server_port))


# --- events (services/kit/outbox.py, services/kit/events/) ---------------------------
# Module-level like any prometheus_client metric: one per process, whatever the number of
# relays and consumers (in-process tests run several), told apart by labels.

OUTBOX_PUBLISHED = Counter(
    "meshmart_outbox_published_total",
    "Outbox events JetStream acknowledged (duplicates included).",
    ["db"],
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "meshmart_outbox_publish_failures_total",
    "Relay rounds that stopped at an event JetStream did not acknowledge.",
    ["db"],
)
EVENTS_CONSUMED = Counter(
    "meshmart_events_consumed_total",
    "Events a consumer handled, by result (applied, duplicate, failed: retried later).",
    ["consumer", "type", "result"],
)
EVENTS_DEAD_LETTERED = Counter(
    "meshmart_events_dead_lettered_total",
    "Events moved to the dead-letter stream (poison, or delivered too often).",
    ["consumer", "type"],
)
CONSUMER_LAG = Histogram(
    "meshmart_event_consumer_lag_seconds",
    "From an event's occurred_at to its commit by the consumer.",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
CONSUMER_PENDING = Gauge(
    "meshmart_event_consumer_pending_messages",
    "Messages of the stream still waiting for this durable consumer (JetStream's"
    " num_pending of the last message fetched).",
    ["consumer"],
)


class OutboxBacklog:
    """``meshmart_outbox_pending_events{db}``: rows not yet acknowledged by JetStream,
    counted at scrape time (in the scrape thread, on its own read-only connection), so
    the figure is fresh exactly when the relay is stuck waiting for the broker."""

    def __init__(self) -> None:
        self._paths: weakref.WeakValueDictionary[str, _Tracked] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def track(self, db: CountsApart) -> object:
        """Count ``db``'s outbox for as long as the caller keeps the returned handle
        (the relay holds it: a stopped, collected relay's outbox is no longer reported)."""
        tracked = _Tracked(db)
        with self._lock:
            self._paths[db.location] = tracked
        return tracked

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "meshmart_outbox_pending_events",
            "Outbox rows waiting to be published (a rising figure: broker or relay down).",
            labels=["db"],
        )
        with self._lock:
            tracked = list(self._paths.values())
        for entry in tracked:
            pending = entry.db.count_apart("SELECT count(*) FROM outbox WHERE sent_us IS NULL")
            if pending is not None:
                family.add_metric([entry.db.label], pending)
        yield family


class CountsApart(Protocol):
    """A database that counts on a connection of its own (services.kit.db.Database)."""

    @property
    def label(self) -> str: ...
    @property
    def location(self) -> str: ...
    def count_apart(self, sql: str) -> int | None: ...


class _Tracked:
    def __init__(self, db: CountsApart) -> None:
        self.db = db


OUTBOX_BACKLOG = OutboxBacklog()
REGISTRY.register(OUTBOX_BACKLOG)
