"""Recommend, Python v1 vs Go v2: throughput and latency on one core each, same load.

    .venv/bin/python bench/recommendation_v1_v2.py [--duration 10] [--rate 200]

Both implementations run as their real processes (the entry points the mesh runs),
each pinned to the same core (``taskset -c 1``), one after the other, against the same
upstreams: the real catalog, order and user of the in-process shop (harness/shop.py, in
this process, pinned with ghz to the other core), with a recorded purchase history so the
call takes the personalised path (model cached as in production, GetProduct per product)
and a registered newcomer taking the popular path (one ListProducts scan); every call also
looks its user up (one GetUser, beside the model read). For each implementation and
user, with ghz:

  fixed rate   --rate RPC/s for --duration s: p50 / p99 latency
  saturation   16 concurrent calls for --duration s: RPC/s

and, from /proc, the CPU the implementation's process used per call during the
saturation run ("ms CPU/call"): 1000 / that is what one core of it sustains when the
upstreams are not the limit (the in-process Python upstreams may saturate before a fast
implementation does; "core busy" says how close the process came to its core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ghz import ghz, latency_ms, status_codes
from harness.host import cpu_seconds, free_port
from harness.recommendation import IMPLEMENTATIONS, Implementation, build_go_binary, start
from harness.shop import Shop, running_shop

CALL = "meshmart.recommendation.v1.RecommendationService/Recommend"
IMPL_CORE, LOAD_CORE = "1", "0"


@dataclass(frozen=True)
class Result:
    implementation: str
    user: str
    p50_ms: float
    p99_ms: float
    rps: float
    errors: int
    cpu_ms_per_call: float
    core_busy: float




async def recommend(target: str, user: str, *, rate: int, concurrency: int, seconds: int,
                    total: int = 0) -> dict[str, Any]:
    """One ghz run (pinned to the load core) of ``total`` calls (default: rate x seconds).
    A count, not a duration: calls cut off at the end of a duration would be counted as
    errors. In a worker thread: the in-process shop answering it runs on this loop."""
    return await asyncio.to_thread(
        ghz, target, CALL, json.dumps({"user_id": user, "limit": 5}), cpus=LOAD_CORE,
        concurrency=concurrency, total=total or rate * seconds, rps=rate,
    )


def errors_of(report: dict[str, Any]) -> int:
    return sum(n for code, n in status_codes(report).items() if code != "OK")


async def history(shop: Shop) -> str:
    """A purchase history (20 orders over 12 products); returns a buyer with co-purchases."""
    products = [f"sku-10{n:02d}" for n in (1, 2, 3, 10, 11, 12, 20, 21, 22, 30, 31, 40)]
    buyer = ""
    for n in range(20):
        user = await shop.register()
        for product in (products[n % 12], products[(n * 5 + 1) % 12], products[(n * 7 + 2) % 12]):
            await shop.add_to_cart(user.user_id, product)
        await shop.place_order(user.user_id, f"bench-{n}")
        buyer = buyer or user.user_id
    return buyer


async def bench(implementation: Implementation, shop: Shop, users: dict[str, str],
                duration: int, rate: int) -> list[Result]:
    port = free_port()
    server = await start(
        implementation,
        {"MESHMART_PORT": str(port), "MESHMART_LOG_LEVEL": "WARNING",
         "MESHMART_UPSTREAM_ORDER": shop.targets["order"],
         "MESHMART_UPSTREAM_CATALOG": shop.targets["catalog"],
         "MESHMART_UPSTREAM_USER": shop.targets["user"],
         "MESHMART_SERVICE_VERSION": implementation.version,
         # Generous upstream budgets: the shared box must not turn load into timeouts.
         "MESHMART_RECOMMENDATION_ORDER_TIMEOUT_MS": "2000",
         "MESHMART_RECOMMENDATION_CATALOG_TIMEOUT_MS": "2000",
         "MESHMART_RECOMMENDATION_USER_TIMEOUT_MS": "2000"},
        cpus=IMPL_CORE,
    )
    process = server.process
    reader = asyncio.create_task(server.read_stderr())
    target = f"127.0.0.1:{port}"
    results = []
    try:
        # WARNING level hides "server.started": wait for the port instead.
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        for kind, user in users.items():
            # Warm up, build the model.
            await recommend(target, user, rate=100, concurrency=4, seconds=2)
            fixed = await recommend(target, user, rate=rate, concurrency=8, seconds=duration)
            # Saturation: as many calls as the fixed-rate run suggests fit in the duration,
            # from a one-second probe at full speed.
            probe = await recommend(target, user, rate=0, concurrency=16, seconds=1,
                                    total=max(200, int(4 * float(fixed["rps"]))))
            total = max(200, int(float(probe["rps"]) * duration))
            before = cpu_seconds(process.pid)
            saturated = await recommend(target, user, rate=0, concurrency=16,
                                        seconds=duration, total=total)
            used = cpu_seconds(process.pid) - before
            calls = int(saturated.get("count") or 0)
            results.append(Result(
                implementation.name, kind, latency_ms(fixed, 50), latency_ms(fixed, 99),
                float(saturated["rps"]), errors_of(fixed) + errors_of(saturated),
                1000 * used / max(calls, 1), used / (float(saturated["total"]) / 1e9),
            ))
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
        await reader
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200, help="RPC/s of the latency runs")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin the processes")
    build_go_binary()
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # the shop and ghz: the other core
    with tempfile.TemporaryDirectory() as tmp:
        async with running_shop(Path(tmp)) as shop:
            newcomer = (await shop.register()).user_id  # unknown users are NOT_FOUND
            users = {"personalised": await history(shop), "popular": newcomer}
            results = []
            for implementation in IMPLEMENTATIONS:
                results += await bench(implementation, shop, users, args.duration, args.rate)
    print(f"\nRecommend (limit 5), one core per implementation; latency at {args.rate} RPC/s, "
          f"RPC/s at 16 concurrent calls, {args.duration}s runs")
    print(f"{'impl':<10} {'path':<13} {'p50 ms':>7} {'p99 ms':>7} {'RPC/s':>7} "
          f"{'ms CPU/call':>11} {'core busy':>9} errors")
    for r in results:
        print(f"{r.implementation:<10} {r.user:<13} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
              f"{r.rps:>7.0f} {r.cpu_ms_per_call:>11.3f} {r.core_busy:>9.0%} {r.errors}")


if __name__ == "__main__":
    asyncio.run(main())
