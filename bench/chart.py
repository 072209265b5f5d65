"""The chart of `make bench`: the side-by-side figures of bench/report.py, each with its
goal from bench/goals.toml drawn beside it (a red line or tick), as one PNG.

Only draws what report.py measured in the same run (its Report.figures); a part that was
skipped or failed shows as "not measured".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: a file only

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.goals import GOALS

DIRECT, MESH, GOAL, OTHER = "#9aa5b1", "#2f6db5", "#d0342c", "#e0a030"


def _missing(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center",
            transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _goal_tick(ax: Axes, x: float, width: float, y: float, label: str | None) -> None:
    # matplotlib skips a legend entry for a label starting with '_'.
    ax.hlines(y, x - width / 2, x + width / 2, colors=GOAL, linewidth=2.5,
              label=label if label is not None else "_nolegend_")


def _latency(ax: Axes, mode: str, figures: dict[str, tuple[float, float, float]]) -> None:
    names = list(figures)
    width = 0.38
    for i, name in enumerate(names):
        direct, mesh, goal = figures[name]
        ax.bar(i - width / 2, direct, width, color=DIRECT, label="direct" if i == 0 else None)
        ax.bar(i + width / 2, mesh, width, color=MESH,
               label="two sidecars" if i == 0 else None)
        _goal_tick(ax, i + width / 2, width, direct + goal,
                   "goal: direct + the added ms of bench/goals.toml" if i == 0 else None)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("ms")
    ax.set_title(f"Mesh overhead: GetProduct latency @ {mode}", fontsize=10)
    ax.legend(fontsize=8)


def _saturation(ax: Axes, overhead: dict[str, Any], python: dict[str, float] | None) -> None:
    direct, mesh = overhead["saturation"]
    goal = overhead["goal_saturation"]
    ax.bar(0, direct, 0.6, color=DIRECT, label="direct")
    ax.bar(1, mesh, 0.6, color=MESH, label="two sidecars")
    _goal_tick(ax, 1, 0.6, goal * direct, f"goal: >= {goal}x direct")
    labels = ["direct", "two sidecars"]
    if python:
        for i, (label, per_core) in enumerate(python.items(), start=2):
            ax.bar(i, per_core, 0.6, color=OTHER,
                   label="one catalog, RPC/s per core\n(1 / CPU per call)" if i == 2 else None)
            labels.append(label.split(" (")[0])
        rps = GOALS.python_rpc_per_core
        _goal_tick(ax, 2.5, 1.6, rps, None)
        ax.text(2.5, rps, f" goal {rps:,.0f}/core", color=GOAL, fontsize=7, va="bottom",
                ha="center")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("RPC/s")
    ax.set_title("Saturation (c=32): direct vs mesh; one Python process", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")


EDGE_PATHS = (
    ("grpc-direct", "product\ngRPC\ndirect", DIRECT),
    ("grpc-edge", "product\ngRPC\nedge", MESH),
    ("rest-edge", "product\nREST\nedge", OTHER),
    ("grpc-stock-direct", "stock\ngRPC\ndirect", DIRECT),
    ("grpc-stock", "stock\ngRPC\nedge", MESH),
    ("rest-stock", "stock\nREST\nedge", OTHER),
)


def _edge(ax: Axes, edge: dict[str, float]) -> None:
    shown = [(key, label, color) for key, label, color in EDGE_PATHS if key in edge]
    for i, (key, _, color) in enumerate(shown):
        ax.bar(i, edge[key], 0.7, color=color)
    index = {key: i for i, (key, _, _) in enumerate(shown)}
    first = True
    for rest, grpc in (("rest-edge", "grpc-edge"), ("rest-stock", "grpc-stock")):
        if rest in index and grpc in index:
            _goal_tick(ax, index[rest], 0.7, GOALS.rest_over_grpc * edge[grpc],
                       f"goal: REST >= {GOALS.rest_over_grpc}x gRPC, same edge"
                       if first else None)
            first = False
    ax.set_xticks(range(len(shown)), [label for _, label, _ in shown], fontsize=7)
    ax.set_ylabel("requests/s")
    title = "Edge: GetProduct / GetStock, REST vs gRPC vs direct"
    if "rest-cached" in edge:  # off the scale of the others: in words
        title += f"\n(REST from the edge's cache: {edge['rest-cached']:,.0f} req/s)"
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 1.25 * max(edge[key] for key, _, _ in shown))
    ax.legend(fontsize=7, loc="upper right")


def _orders(ax: Axes, orders: dict[str, Any]) -> None:
    phases = [p for p in (orders["saturation"], orders["at_rate"]) if p]
    width = 0.38
    for i, phase in enumerate(phases):
        label = (f"saturation, {phase['orders_per_s']:.1f} orders/s" if phase["workers"]
                 else f"open loop at {phase['rate']:g}/s")
        values = [phase["p50_ms"], phase["p90_ms"], phase["p99_ms"]]
        xs = [j + (i - 0.5) * width for j in range(3)]
        ax.bar(xs, values, width, color=(MESH, OTHER)[i % 2], label=label)
    ax.set_xticks(range(3), ["p50", "p90", "p99"])
    ax.set_ylabel("ms per order")
    ax.set_title("PlaceOrder (whole saga), REST through the edge\n(no goal in docs/design.md)",
                 fontsize=10)
    ax.legend(fontsize=7)


def _memory(ax: Axes, memory: dict[str, Any]) -> None:
    idle, peak, kinds = memory["idle"], memory["peak"], memory["kinds"]
    # Zipkin's JVM and Prometheus would flatten the scale: they are in the report's table.
    names = [n for n in kinds if kinds[n] != "observability"][::-1]
    ys = range(len(names))
    ax.barh([y + 0.2 for y in ys], [idle[n] for n in names], 0.4, color=MESH, label="idle")
    anon = memory.get("anon") or {}
    if anon:  # the process's own memory; the rest of an Envoy's RSS is its shared binary
        ax.barh([y + 0.2 for y in ys], [anon.get(n, 0.0) for n in names], 0.4,
                color="#173b66", label="of it anonymous (own) memory")
    ax.barh([y - 0.2 for y in ys], [peak.get(n, 0.0) for n in names], 0.4, color=OTHER,
            label="peak under load")
    ax.set_yticks(list(ys), [f"{n} ({kinds[n].split(' ')[0]})" for n in names], fontsize=7)
    ax.axvline(memory["goal_envoy"], color=GOAL, linewidth=1.5,
               label=f"goal: each Envoy < {memory['goal_envoy']} MB idle")
    ax.set_xlabel("RSS, MB")
    ax.set_title("RSS of the whole shop (Zipkin, Prometheus: in the report)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")


def draw(figures: dict[str, Any], out: Path, title: str) -> None:
    fig = plt.figure(figsize=(17, 12), dpi=90)
    grid = fig.add_gridspec(3, 3, width_ratios=(1, 1, 1.1))
    axes = [fig.add_subplot(grid[r, c]) for r in range(3) for c in range(2)]
    overhead = figures.get("overhead")
    if overhead:
        modes = list(overhead["latency"])
        _latency(axes[0], modes[0], overhead["latency"][modes[0]])
        _latency(axes[1], modes[-1], overhead["latency"][modes[-1]])
        _saturation(axes[2], overhead, figures.get("python"))
    else:
        for ax in axes[:3]:
            _missing(ax, "Mesh overhead")
    if figures.get("edge"):
        _edge(axes[3], figures["edge"])
    else:
        _missing(axes[3], "Edge: REST vs gRPC")
    if figures.get("orders"):
        _orders(axes[4], figures["orders"])
    else:
        _missing(axes[4], "PlaceOrder through the edge")
    axes[5].axis("off")
    axes[5].text(0.0, 0.9, "Read the ratios: every pair is measured side by side\n"
                 "in the same run on the same two cores, which the load\n"
                 "tools (ghz, wrk) share with the system under test.\n\n"
                 "Figures, goals and before/after: bench/REPORT.md", fontsize=9,
                 va="top", transform=axes[5].transAxes)
    memory_ax = fig.add_subplot(grid[:, 2])
    if figures.get("memory"):
        _memory(memory_ax, figures["memory"])
    else:
        _missing(memory_ax, "Memory of the whole shop")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out)
    plt.close(fig)
