"""PlaceOrder, the whole saga, through the edge's REST face: orders/s and latency.

A phase of bench/edge_rest_vs_grpc.py, run in the shop it starts (edge, sidecars, every
service, NATS). Each order is the one order of a user of its own, with one item in the
cart and its own idempotency key: the same POST the README's curl lines send,

    POST /api/v1/users/{user_id}/orders   Authorization: Bearer <token>

which the edge transcodes and sends on, over mTLS, to order; order reserves stock
(inventory), charges the card (payment), confirms, and commits its OrderPlaced /
OrderConfirmed events to its outbox, before it answers.

Prepared before anything is timed: Register and Login straight to a user instance over
gRPC (the edge allows one client address 10 sign-ups and 10 logins per 10 s: a guard
against password guessing, not a path to measure), then one item into each cart through
the edge. Timed, on loopback only, bounded in orders and in time:

  saturation  --workers clients in a closed loop, each POSTing the next user's order as
              soon as its last one answered: orders/s from the first send to the last
              answer, and the latency percentiles (queueing included)
  at a rate   open loop (harness/load.py) at half the saturation rate with the users left:
              the latency of an order when the shop is not queueing

The edge's own limit on the route (tools/mesh/edge/api.py PLACE_ORDER: a bucket of 50,
refilled at 50/s, for all clients) guards the shop; the benchmark runs the edge with its
own setting instead (EDGE_PLACE_ORDER_RATE orders/s, api.PLACE_ORDER_RATE_SETTING, which
bench/edge_rest_vs_grpc.py sets for the run), so that it measures the shop, not the guard.
The per-user bucket stays (one order per user here never meets it). A 429 still counts as
a failure, and the result says which limit the edge ran with.

After both phases, ``audit`` reads order's and payment's databases of the run: every
order must have ended CONFIRMED or CANCELLED, no order may be charged twice, a confirmed
order has exactly one captured charge and a cancelled one none left captured.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import requests
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from harness.load import OK, CallFailed, LoadReport, open_loop, require_loopback
from tools.mesh.edge import api

PASSWORD = "correct horse battery"
CARD = {"number": "4242424242424242", "expMonth": 12, "expYear": 2030, "cvc": "123"}
ADDRESS = {"name": "Bench", "line1": "1 Mesh Street", "city": "Berlin",
           "postalCode": "10115", "country": "DE"}
# Products with the most opening stock (services/inventory/seed.py), one per order in
# turn, so a few hundred orders never run out of stock.
PRODUCTS = ("sku-1009", "sku-1023", "sku-1026", "sku-1028", "sku-1029", "sku-1041",
            "sku-1046", "sku-1047", "sku-1006", "sku-1011", "sku-1020", "sku-1034")
TIMEOUT_S = 15.0  # above the edge's 10 s for the route
# The edge's shared PlaceOrder bucket for the benchmark, in orders per second: far above
# what this shop carries on a small machine, so the shop is what saturates.
EDGE_PLACE_ORDER_RATE = 2000
# How long the audit waits for sagas still running (orders whose call failed) to end.
AUDIT_WAIT_S = 30.0


@dataclass(frozen=True)
class Shopper:
    user_id: str
    token: str


@dataclass(frozen=True)
class Phase:
    """One timed phase: what was asked, what came back."""

    name: str
    sent: int
    orders: int  # answered with the order (CONFIRMED or CANCELLED)
    confirmed: int
    cancelled: int  # the saga compensated (e.g. payment declined): a definite end
    failed: dict[str, int]  # HTTP status or driver outcome -> count
    seconds: float
    orders_per_s: float  # orders per second, first send to last answer
    # latency percentiles of the orders (failed calls are counted in `failed` only)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    rate: float = 0.0  # asked rate (open loop), 0 for the closed loop
    workers: int = 0  # clients of the closed loop


@dataclass(frozen=True)
class Audit:
    """Every order of the run as order's and payment's databases hold it after the load."""

    orders: int
    confirmed: int
    cancelled: int
    unfinished: int  # neither CONFIRMED nor CANCELLED, or compensation still pending
    charged_twice: int  # orders with more than one payment
    confirmed_without_one_capture: int  # CONFIRMED, but not exactly one CAPTURED payment
    cancelled_still_captured: int  # CANCELLED, with a payment left CAPTURED

    @property
    def problems(self) -> list[str]:
        named = {"unfinished": self.unfinished, "charged twice": self.charged_twice,
                 "confirmed without one capture": self.confirmed_without_one_capture,
                 "cancelled still captured": self.cancelled_still_captured}
        return [f"{name}: {count}" for name, count in named.items() if count]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PlaceOrderResult:
    prepared: int
    prepare_seconds: float
    saturation: Phase
    at_rate: Phase | None
    edge_limit_per_s: float  # the edge's shared PlaceOrder bucket in this run
    audit: Audit | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EdgeClient:
    """requests over kept-alive connections, one Session per thread."""

    def __init__(self, edge_url: str) -> None:
        require_loopback(edge_url.split("//", 1)[1].split("/", 1)[0])
        self.edge_url = edge_url
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def post(self, path: str, token: str, body: dict[str, Any]) -> requests.Response:
        return self._session().post(f"{self.edge_url}{path}", json=body, timeout=TIMEOUT_S,
                                    headers={"Authorization": f"Bearer {token}"})

    def add_to_cart(self, shopper: Shopper, product_id: str) -> None:
        response = self.post(f"/api/v1/users/{shopper.user_id}/cart/items", shopper.token,
                             {"productId": product_id, "quantity": 1})
        if response.status_code != 200:
            raise RuntimeError(f"add to cart: HTTP {response.status_code} {response.text[:200]}")

    def place_order(self, shopper: Shopper) -> str:
        """The order's state, "confirmed" or "cancelled"; CallFailed for an HTTP error."""
        response = self.post(f"/api/v1/users/{shopper.user_id}/orders", shopper.token,
                             {"idempotencyKey": uuid.uuid4().hex, "card": CARD,
                              "shippingAddress": ADDRESS})
        if response.status_code != 200:
            raise CallFailed(f"HTTP {response.status_code}", response.text[:200])
        state = str(response.json()["order"]["state"])  # "STATE_CONFIRMED", ...
        return state.removeprefix("STATE_").lower()


def prepare(user_target: str, client: EdgeClient, count: int, threads: int = 4) -> list[Shopper]:
    """``count`` users, each logged in and with one item in the cart."""
    require_loopback(user_target)
    run = uuid.uuid4().hex[:8]
    channel = grpc.insecure_channel(user_target)
    stub = user_pb2_grpc.UserServiceStub(channel)

    def one(i: int) -> Shopper:
        email = f"bench-{run}-{i}@example.com"
        stub.Register(user_pb2.RegisterRequest(email=email, password=PASSWORD,
                                               full_name=f"Bench {i}"), timeout=10)
        login = stub.Login(user_pb2.LoginRequest(email=email, password=PASSWORD), timeout=10)
        shopper = Shopper(login.user.user_id, login.access_token)
        client.add_to_cart(shopper, PRODUCTS[i % len(PRODUCTS)])
        return shopper

    try:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(count)))
    finally:
        channel.close()


def _phase(name: str, report: LoadReport, *, rate: float = 0.0, workers: int = 0) -> Phase:
    return Phase(
        name=name, sent=report.sent, orders=report.ok, confirmed=report.tags["confirmed"],
        cancelled=report.tags["cancelled"], failed=report.failed_by_code,
        seconds=report.elapsed,
        orders_per_s=report.ok / report.elapsed if report.elapsed else 0.0,
        p50_ms=report.latency_ms(50, OK), p90_ms=report.latency_ms(90, OK),
        p99_ms=report.latency_ms(99, OK), max_ms=report.latency_ms(100, OK), rate=rate,
        workers=workers,
    )


def saturation(client: EdgeClient, shoppers: list[Shopper], workers: int,
               seconds: float) -> Phase:
    """``workers`` clients in a closed loop until the shoppers or ``seconds`` run out."""
    report = LoadReport(rate=0.0, duration=seconds)
    lock = threading.Lock()
    queue = iter(shoppers)
    started = time.perf_counter()
    deadline = started + seconds

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                shopper = next(queue, None)
                if shopper is None:
                    return
                report.sent += 1
            t0 = time.perf_counter()
            try:
                tag = client.place_order(shopper)
            except CallFailed as failure:
                code, detail, tag = failure.code, failure.detail, None
            except requests.RequestException as error:
                code, detail, tag = "CLIENT_ERROR", str(error)[:200], None
            else:
                code, detail = OK, ""
            now = time.perf_counter()
            with lock:
                report.record(code, now - t0, now - started, detail)
                if tag:
                    report.tags[tag] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + TIMEOUT_S + 5)
    report.elapsed = time.perf_counter() - started
    return _phase("saturation", report, workers=workers)


def at_rate(client: EdgeClient, shoppers: list[Shopper], rate: float, seconds: float) -> Phase:
    """Open loop at ``rate`` orders/s, one shopper per order, bounded by both."""
    pool = concurrent.futures.ThreadPoolExecutor(64)

    async def run() -> LoadReport:
        loop = asyncio.get_running_loop()

        async def call(i: int) -> str:
            return await loop.run_in_executor(pool, client.place_order, shoppers[i])

        return await open_loop(call, rate=rate, duration=seconds, max_requests=len(shoppers),
                               max_in_flight=64, drain_timeout=TIMEOUT_S + 5)

    try:
        report = asyncio.run(run())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return _phase("at a rate", report, rate=rate)


_AUDIT = """
    WITH pay AS (
        SELECT order_id, count(*) AS payments,
               sum(status = 'CAPTURED') AS captured
        FROM payment.payments GROUP BY order_id
    )
    SELECT count(*),
           coalesce(sum(o.state = 'CONFIRMED'), 0),
           coalesce(sum(o.state = 'CANCELLED'), 0),
           coalesce(sum(o.state NOT IN ('CONFIRMED', 'CANCELLED') OR o.step <> 'done'), 0),
           coalesce(sum(coalesce(pay.payments, 0) > 1), 0),
           coalesce(sum(o.state = 'CONFIRMED' AND coalesce(pay.captured, 0) <> 1), 0),
           coalesce(sum(o.state = 'CANCELLED' AND coalesce(pay.captured, 0) > 0), 0)
    FROM orders AS o LEFT JOIN pay ON pay.order_id = o.order_id
"""


def audit(data_dir: Path, wait_s: float = AUDIT_WAIT_S) -> Audit:
    """Order's and payment's SQLite files of the run, read-only, once no saga is left
    running (or ``wait_s`` has passed: what is still unfinished then is reported)."""
    order_db, payment_db = data_dir / "order.sqlite3", data_dir / "payment.sqlite3"
    conn = sqlite3.connect(f"file:{order_db}?mode=ro", uri=True, timeout=5)
    try:
        conn.execute("ATTACH DATABASE ? AS payment", (f"file:{payment_db}?mode=ro",))
        deadline = time.monotonic() + wait_s
        while True:
            found = Audit(*conn.execute(_AUDIT).fetchone())
            if not found.unfinished or time.monotonic() > deadline:
                return found
            time.sleep(0.5)
    finally:
        conn.close()


def measure(edge_url: str, user_target: str, *, orders: int, workers: int,
            seconds: float, edge_limit_per_s: float,
            data_dir: Path | None = None) -> PlaceOrderResult:
    """Prepare ``orders`` shoppers, then two thirds of them (at most) for the saturation
    phase and what is left for the open loop at half its rate; then audit the run's
    databases in ``data_dir`` (when given)."""
    client = EdgeClient(edge_url)
    t0 = time.perf_counter()
    shoppers = prepare(user_target, client, orders)
    prepared = time.perf_counter() - t0
    client.place_order(shoppers.pop())  # one warm-up order (connections, first saga)
    sat = saturation(client, shoppers[: len(shoppers) * 2 // 3], workers, seconds)
    left = shoppers[sat.sent:]
    rate = max(1.0, round(sat.orders_per_s / 2, 1))
    slow = at_rate(client, left, rate, seconds) if len(left) >= 10 else None
    checked = audit(data_dir) if data_dir is not None else None
    return PlaceOrderResult(len(shoppers) + 1, prepared, sat, slow, edge_limit_per_s, checked)


def summary(result: PlaceOrderResult) -> list[str]:
    lines = [f"place-order: {result.prepared} users prepared (register + login over gRPC, "
             f"one item in each cart through the edge) in {result.prepare_seconds:.1f}s; "
             f"the edge's PlaceOrder bucket {result.edge_limit_per_s:g}/s (production "
             f"{api.place_order_rate():g}/s)"]
    for phase in (result.saturation, result.at_rate):
        if phase is None:
            continue
        how = (f"{phase.workers} clients, closed loop" if phase.workers
               else f"open loop at {phase.rate:g}/s")
        failed = ", ".join(f"{c} {n}" for c, n in phase.failed.items()) or "none"
        lines.append(
            f"place-order {phase.name} ({how}): {phase.orders} orders in {phase.seconds:.1f}s "
            f"= {phase.orders_per_s:.1f} orders/s; p50 {phase.p50_ms:.0f} ms, p90 "
            f"{phase.p90_ms:.0f} ms, p99 {phase.p99_ms:.0f} ms, max {phase.max_ms:.0f} ms; "
            f"confirmed {phase.confirmed}, cancelled {phase.cancelled}, failed {failed}")
    if result.audit is not None:
        found = result.audit
        lines.append(
            f"place-order audit (order's and payment's databases after the run): "
            f"{found.orders} orders, {found.confirmed} confirmed, {found.cancelled} cancelled; "
            f"{'; '.join(found.problems) or 'every order ended, none charged twice'}")
    return lines

