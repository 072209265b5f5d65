"""Stand-ins for where a process reports to, recording what it sends: a Zipkin collector
(spans, POST /api/v2/spans) and a Consul agent (PUT /v1/agent/service/register and
deregister). Plain HTTP servers in a thread; they answer what the real ones answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str  # with the query
    body: Any  # parsed JSON, or None


@dataclass
class Recorder:
    url: str
    requests: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, predicate: Any, within: float = 15.0) -> bool:
        """Block (call it in a thread) until predicate(requests) holds or time runs out."""
        with self.changed:
            return bool(self.changed.wait_for(lambda: predicate(list(self.requests)), within))

    def spans(self) -> list[dict[str, Any]]:
        return [span for r in self.requests if r.path.startswith("/api/v2/spans")
                for span in (r.body or [])]


@contextmanager
def recorder() -> Iterator[Recorder]:
    """An HTTP server on 127.0.0.1 recording every request; answers 200 ("true" for the
    Consul endpoints, as the agent does) or 202 for spans, as Zipkin does."""
    record: Recorder | None = None

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            assert record is not None
            with record.changed:
                record.requests.append(Received(self.command, self.path, body))
                record.changed.notify_all()
            spans = self.path.startswith("/api/v2/spans")
            answer = b"" if spans else b"true"
            self.send_response(202 if spans else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_PUT = do_POST = do_GET = _handle

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record = Recorder(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
