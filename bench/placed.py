"""PlaceOrder batches on the in-process shop (harness/shop.py), measured the same way for
the side-by-side benchmarks (bench/durable_commits.py, bench/db_engines.py): the batch,
one run's numbers, and the medians of each variant over the rounds."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from meshmart.order.v1 import order_pb2

from harness.shop import Shop

# Products with the most opening stock (services/inventory/seed.py), as in place_order.py.
PRODUCTS = ("sku-1009", "sku-1023", "sku-1026", "sku-1028", "sku-1029", "sku-1041")
FIELDS = ("p50_ms", "p99_ms", "mean_ms", "orders_per_s")


@dataclass(frozen=True)
class Run:
    variant: str
    round: int
    orders: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    orders_per_s: float

    @classmethod
    def of(cls, variant: str, round_: int, latencies: Sequence[float], wall: float) -> Run:
        """One batch's numbers from its latencies (s) and its wall time (s)."""
        ms = sorted(1000 * s for s in latencies)
        return cls(
            variant=variant,
            round=round_,
            orders=len(ms),
            p50_ms=ms[len(ms) // 2],
            p99_ms=ms[min(len(ms) - 1, int(len(ms) * 0.99))],
            mean_ms=statistics.fmean(ms),
            orders_per_s=len(ms) / wall,
        )

    def line(self) -> str:
        return (
            f"round {self.round} {self.variant:<10} {self.orders} orders"
            f"  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms"
            f"  mean {self.mean_ms:6.2f} ms  {self.orders_per_s:6.1f} orders/s"
        )


async def place_orders(shop: Shop, orders: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) of ``orders`` PlaceOrder calls, ``concurrency`` at a time, and the wall
    time of the whole batch (users and carts are prepared before the clock starts)."""
    users = []
    for n in range(orders):
        user = await shop.register()
        await shop.add_to_cart(user.user_id, PRODUCTS[n % len(PRODUCTS)])
        users.append(user.user_id)
    latencies: list[float] = []
    queue = iter(enumerate(users))

    async def worker() -> None:
        for n, user_id in queue:
            started = time.perf_counter()
            order = await shop.place_order(user_id, f"bench-{n}")
            latencies.append(time.perf_counter() - started)
            if order.state != order_pb2.Order.STATE_CONFIRMED:
                raise RuntimeError(f"order {n} ended {order_pb2.Order.State.Name(order.state)}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def medians(
    runs: Sequence[Run], variants: Sequence[str], concurrency: int
) -> dict[str, dict[str, float]]:
    """Prints and returns each variant's median of every field over its rounds."""
    summary = {
        variant: {
            name: statistics.median(getattr(r, name) for r in runs if r.variant == variant)
            for name in FIELDS
        }
        for variant in variants
    }
    rounds = max((r.round for r in runs), default=0)
    print(f"\nconcurrency {concurrency}, median over {rounds} rounds:")
    for variant in variants:
        s = summary[variant]
        print(
            f"  {variant:<10} p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms"
            f"  mean {s['mean_ms']:6.2f} ms  {s['orders_per_s']:6.1f} orders/s"
        )
    return summary
