"""The goals of `make bench`, read from bench/goals.toml (what each is for: docs/design.md)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

GOALS_FILE = Path(__file__).resolve().with_name("goals.toml")


@dataclass(frozen=True)
class Goals:
    p50_added_ms: float
    p90_added_ms: float
    p99_added_ms: float
    saturation_ratio: float
    python_rpc_per_core: float
    kit_over_bare: float
    kit_over_bare_at_rate: float
    at_rate_rps: int
    rest_over_grpc: float
    envoy_idle_mb: float
    sidecar_added_over_bare: float
    sidecar_rates: tuple[int, ...]
    sidecar_saturation: float
    orders_per_second: float
    orders_p99_ms_at_half: float
    events_per_core: float
    events_lag_p99_ms: float
    events_lag_rate: int


def load_goals(path: Path = GOALS_FILE) -> Goals:
    data = tomllib.loads(path.read_text())
    mesh = data["mesh_overhead"]
    return Goals(
        p50_added_ms=mesh["p50_added_ms"],
        p90_added_ms=mesh["p90_added_ms"],
        p99_added_ms=mesh["p99_added_ms"],
        saturation_ratio=mesh["saturation_ratio"],
        python_rpc_per_core=data["python_process"]["rpc_per_core"],
        kit_over_bare=data["python_process"]["kit_over_bare"],
        kit_over_bare_at_rate=data["python_process"]["kit_over_bare_at_rate"],
        at_rate_rps=data["python_process"]["at_rate_rps"],
        rest_over_grpc=data["edge"]["rest_over_grpc"],
        envoy_idle_mb=data["memory"]["envoy_idle_mb"],
        sidecar_added_over_bare=data["sidecar_pair"]["added_over_bare_pair"],
        sidecar_rates=tuple(data["sidecar_pair"]["rates"]),
        sidecar_saturation=data["sidecar_pair"]["saturation_over_direct"],
        orders_per_second=data["orders"]["per_second"],
        orders_p99_ms_at_half=data["orders"]["p99_ms_at_half"],
        events_per_core=data["events"]["per_core"],
        events_lag_p99_ms=data["events"]["lag_p99_ms"],
        events_lag_rate=data["events"]["lag_rate"],
    )


GOALS = load_goals()
