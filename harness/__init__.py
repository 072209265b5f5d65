"""What tests, benchmarks and the chaos scenarios share to drive a running system.

  shop.py            the whole shop in-process (each service's own build(config, stack))
  host.py            free loopback addresses and ports, a process's (or a mesh's) CPU
                     time, and waiting until a mesh has gone quiet (``settled``)
  wait.py            ``until`` (a condition within a deadline) and ``first_seen`` (a
                     transient state, reported when seen, never waited for)
  load.py            the open-loop load driver (``python -m harness.load``)
  ghz.py             one ghz run against a gRPC target, and its report read back
  mesh.py            reading a running mesh: Consul health, a sidecar's counters, idle
                     JetStream consumers
  nats_server.py     a real nats-server that a test can kill and restart
  recommendation.py  the two RecommendationService implementations as real processes
  compose.py         the shop in real containers as a compose project of its own

tests/, bench/ and tools/chaos import this package; it imports none of them, and no
production code (services/, tools/mesh/) imports it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
