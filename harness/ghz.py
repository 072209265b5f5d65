"""One ghz run against a gRPC target, and the numbers read back from its JSON report.

ghz is the benchmarks' load tool (bench/): a compiled load generator measures a service
without the measuring side costing as much as the measured one. The chaos scenarios use
harness/load.py instead, which sees every call's outcome.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Sequence
from typing import Any

from harness import ROOT

GHZ = ROOT / ".venv" / "bin" / "ghz"
PROTOSET = ROOT / "gen" / "descriptors" / "meshmart.protoset"


class GhzFailed(subprocess.CalledProcessError):
    """ghz exited non-zero; the message carries what it wrote to stderr."""

    def __str__(self) -> str:
        return f"ghz exited {self.returncode}: {(self.stderr or '').strip()}"


def ghz(
    target: str,
    call: str,
    data: str,
    *,
    concurrency: int,
    seconds: int = 0,
    total: int = 0,
    rps: int = 0,
    metadata: dict[str, str] | None = None,
    cpus: str | None = None,
    timeout: float | None = None,
    prefix: Sequence[str] = (),
) -> dict[str, Any]:
    """Send ``call`` ("pkg.Service/Method") with the JSON ``data`` to ``target`` over one
    connection, ``concurrency`` calls at a time: for ``seconds`` (calls still in flight at
    the end come back Canceled) or, given ``total``, that many calls. ``rps`` caps the
    rate (0: as fast as it goes), ``metadata`` goes with every call, ``cpus`` pins ghz
    (taskset -c), ``prefix`` runs it under another command (`ip netns exec <pod>`: from
    inside a pod, tools/mesh/pods.py). Returns ghz's JSON report; raises GhzFailed when
    ghz fails and TimeoutExpired after ``timeout`` seconds (default: ``seconds`` plus a minute; ten
    minutes for a ``total``)."""
    if bool(seconds) == bool(total):
        raise ValueError("give either seconds or total")
    cmd = [
        str(GHZ), "--insecure", "--protoset", str(PROTOSET), "--call", call, "-d", data,
        "-c", str(concurrency), "--connections", "1", "-O", "json",
        *(["-n", str(total)] if total else ["-z", f"{seconds}s"]),
        *(["--rps", str(rps)] if rps else []),
        *(["-m", json.dumps(metadata)] if metadata else []),
        target,
    ]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    cmd = [*prefix, *cmd]
    if timeout is None:
        timeout = seconds + 60 if seconds else 600
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    if out.returncode != 0:
        raise GhzFailed(out.returncode, cmd, out.stdout, out.stderr)
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def latency_ms(report: dict[str, Any], percent: int) -> float:
    """The ``percent`` latency percentile of a report in ms (NaN when it has none)."""
    for item in report.get("latencyDistribution") or []:
        if int(item["percentage"]) == percent:
            return float(item["latency"]) / 1e6
    return math.nan


def status_codes(report: dict[str, Any]) -> dict[str, int]:
    """Calls per final status ("OK", "Canceled", "Unavailable", ...)."""
    return {code: int(n) for code, n in (report.get("statusCodeDistribution") or {}).items()}


# How a call ghz cut off itself reads when it closed its connection at the end of a
# duration ("error reading from server: read tcp ...: use of closed network connection").
_CLOSED_BY_GHZ = "use of closed network connection"


def failed_calls(report: dict[str, Any]) -> dict[str, int]:
    """Failed calls per status, less those ghz cut off itself at the end of a duration
    (``seconds``): the calls in flight then come back Canceled, or Unavailable on the
    connection it has just closed (as many as ``concurrency``, on a direct path too)."""
    codes = {code: n for code, n in status_codes(report).items()
             if code not in ("OK", "Canceled")}
    cut_off = sum(int(n) for message, n in (report.get("errorDistribution") or {}).items()
                  if "code = Unavailable" in message and _CLOSED_BY_GHZ in message)
    if cut_off:
        codes["Unavailable"] -= cut_off
    return {code: n for code, n in codes.items() if n > 0}
