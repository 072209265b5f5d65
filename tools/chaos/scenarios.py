"""One function per fault: inject it into a running mesh under steady load, measure, put
the mesh back to healthy, and return the numbers.

tests/chaos asserts on what these return; `make demo` (tools/chaos/demo.py) narrates it.
Each scenario takes the MeshPlan of a running mesh and a ``say`` callback for progress
lines, and ends (also when it fails) with ``restore``: faults off, every instance and
sidecar passing, no caller with an ejected instance, so the next one starts clean.

Load comes from harness/load.py (open loop, bounded) and goes to loopback only: to a
caller's sidecar listener (calling "as" that service, so the caller's Envoy applies
retries, circuit breaking and outlier detection; with pods through a port forward into
the caller's pod, harness/callers.py), or as the edge (tools/chaos/shop.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from meshmart.common.v1 import common_pb2
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc
from meshmart.recommendation.v1 import recommendation_pb2, recommendation_pb2_grpc

from harness.callers import caller_channel
from harness.load import Call, LoadReport, capacity, open_loop
from harness.mesh import consumers_idle, health_of, public_http_counter, upstream_counter
from harness.wait import first_seen, until
from services.kit.db import count_apart
from tools.chaos import probe
from tools.chaos.shop import (
    CARD,
    Buyers,
    EventAudit,
    OrderAudit,
    audit_events,
    audit_orders,
    shop,
)
from tools.mesh.http import HTTPFailure, get_text
from tools.mesh.nats import INSTANCE_ID as NATS_INSTANCE
from tools.mesh.nats import Nats
from tools.mesh.plan import MeshPlan
from tools.mesh.postgres import Postgres
from tools.mesh.supervisor import Supervisor
from tools.mesh.topology import Instance

Say = Callable[[str], None]


def quiet(_: str) -> None:
    """A ``say`` that says nothing."""


@contextlib.asynccontextmanager
async def restoring(plan: MeshPlan, say: Say) -> AsyncIterator[None]:
    """Run a scenario's body, then bring the mesh back to healthy (also after a failure,
    without hiding the failure)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await probe.restore(plan)
        raise
    took = await probe.restore(plan)
    say(f"  mesh healthy again ({took:.1f}s: every instance passing, no ejection, no fault)")


@contextlib.asynccontextmanager
async def background_load(
    call: Call, *, rate: float, max_seconds: float, max_in_flight: int = 1000
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Task[LoadReport]]]:
    """Open-loop load running while the body injects faults; the body sets the event to
    end it (it also ends by itself after ``max_seconds``) and awaits the task's report."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        open_loop(call, rate=rate, duration=max_seconds, stop=stop, max_in_flight=max_in_flight)
    )
    try:
        yield stop, task
    finally:
        stop.set()
        if not task.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), 30)
            task.cancel()


async def warm_up(call: Call, calls: int = 20) -> None:
    """A few calls one after another before the load: the client's channel, the caller
    sidecar's mTLS connections and the service's first-call work are set up, so the
    measured run does not start with a burst queued behind a handshake (above the
    caller's MaxPendingRequests that burst is refused: a cold start, not the fault)."""
    for i in range(calls):
        await call(i)


async def sized(call: Call, asked: float, share: float) -> tuple[float, float]:
    """(rate, carried): the open-loop rate a scenario runs at, ``asked`` or ``share`` of
    what the path carries right now (harness.load.capacity), whichever is lower. A claim
    such as "no call fails while an instance dies" holds under a load the instances left
    can carry; on a busy box (CI with other work on its two cores) a fixed rate would
    measure the box, not the mesh. Both numbers go into the scenario's report."""
    carried = await capacity(call)
    return min(asked, share * carried), carried


def catalog_call(channel: object) -> Call:
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)

    async def call(_: int) -> str | None:
        await stub.ListProducts(catalog_pb2.ListProductsRequest(page_size=1), timeout=5)
        return None

    return call


def charge_request(user_id: str) -> payment_pb2.ChargeRequest:
    key = uuid.uuid4().hex
    return payment_pb2.ChargeRequest(
        idempotency_key=key, order_id=f"chaos-{key[:16]}", user_id=user_id,
        amount=common_pb2.Money(amount_minor=999, currency="EUR"), card=CARD,
    )


# --------------------------------------------------------------------------- 1. kill -9


@dataclass
class KillResult:
    victim: str
    rate: float  # the load's calls/s (sized: at most the asked rate)
    carried: float  # calls/s the path carried with both instances up, measured first
    load: LoadReport
    killed_at: float  # seconds into the load when the SIGKILL was sent
    # Seconds after the SIGKILL:
    critical_after: float | None  # Consul shows it not passing (None: replaced first)
    dropped_after: float | None  # the caller's Envoy no longer routes to it (None: ditto)
    restarted_after: float  # supervisord runs it again (new pid)
    back_after: float  # passing again and routed to by every caller
    retries: int  # the caller's sidecar retries during the run
    served_before_kill: int  # calls the victim answered in the steady state before it
    served_after_return: int  # calls the restarted instance answered once back
    overflows: dict[str, int]  # the caller sidecar's circuit breakers that refused calls


    @property
    def failed_before_kill(self) -> int:
        """Failures with every instance up: the machine could not carry the rate."""
        return sum(at < self.killed_at for at, _ in self.load.failures_at)


async def kill_one_catalog_instance(
    plan: MeshPlan, say: Say = quiet, *, rate: float = 200, share: float = 0.35,
    victim_id: str = "catalog-2", max_seconds: float = 60,
) -> KillResult:
    """SIGKILL one of two catalog instances while cart's sidecar carries ``rate`` calls/s
    to catalog, or ``share`` of what it carries with both up if that is less (the one
    left takes it all, next to its sibling's restart); run until the restarted instance
    serves calls again."""
    caller = plan.instance("cart-1")
    victim = plan.instance(victim_id)
    callers = probe.callers_of(plan, "catalog")
    await until(lambda: all(probe.serving(plan, callers, i) for i in plan.instances()
                            if i.service == "catalog"),
                60, "both catalog instances routable from every caller",
                in_thread=True, not_yet=probe.NOT_ANSWERING)
    async with restoring(plan, say), caller_channel(plan, caller, "catalog") as channel:
        await warm_up(catalog_call(channel))
        rate, carried = await sized(catalog_call(channel), rate, share)
        say(f"  {rate:.0f} ListProducts/s as cart (cart-1's sidecar -> catalog-1 | catalog-2; "
            f"it carries {carried:.0f}/s)")
        retries_before = upstream_counter(caller, "catalog", "upstream_rq_retry")
        overflows_before = _overflows(caller, "catalog")
        async with background_load(catalog_call(channel), rate=rate,
                                   max_seconds=max_seconds) as (stop, load):
            load_started = time.monotonic()
            victim_served = _host_success(caller, victim)
            await asyncio.sleep(3)  # steady state first
            served_before_kill = _host_success(caller, victim) - victim_served
            killed = await probe.kill_9(plan, probe.program(plan, victim_id))
            t_kill = time.monotonic()
            killed_at = t_kill - load_started
            say(f"  kill -9 {victim_id} (pid {killed}) -- no drain, no deregistration")

            def since() -> float:
                return time.monotonic() - t_kill

            # Whether Consul shows it critical, and whether the caller's Envoy drops it,
            # depends on a race with supervisord: a fast restart registers it again before
            # its check ever fails. Both are watched and reported, not waited for. What the
            # scenario promises is that it is replaced and back in every caller's rotation.
            watching = asyncio.Event()
            critical = asyncio.create_task(first_seen(
                lambda: health_of(plan, victim_id) != "passing", watching,
                in_thread=True, not_yet=probe.NOT_ANSWERING))
            dropped = asyncio.create_task(first_seen(
                lambda: not probe.routable(caller, "catalog", victim), watching,
                in_thread=True, not_yet=probe.NOT_ANSWERING))
            try:
                restarted = await probe.restarted(plan, probe.program(plan, victim_id), killed)
                say(f"  supervisord restarted {victim_id} after {restarted:.1f}s")
                await until(lambda: probe.serving(plan, callers, victim), 60,
                            f"{victim_id} passing and routed to by every catalog caller",
                            in_thread=True, not_yet=probe.NOT_ANSWERING)
            finally:
                watching.set()
            critical_after, dropped_after = await critical, await dropped
            say(f"  Consul: {seen(critical_after, 'critical')}; cart's Envoy: "
                f"{seen(dropped_after, 'stopped routing to it')}")
            back = since()
            served_before = _host_success(caller, victim)
            await asyncio.sleep(3)  # the restarted instance takes its share again
            served = _host_success(caller, victim) - served_before
            say(f"  {victim_id} back in rotation {back:.1f}s after the kill; it answered "
                f"{served} calls in the next 3s")
            stop.set()
            report = await load
        retries = upstream_counter(caller, "catalog", "upstream_rq_retry") - retries_before
        overflows = {k: n - overflows_before[k] for k, n in _overflows(caller, "catalog").items()
                     if n > overflows_before[k]}
    return KillResult(victim_id, rate, carried, report, killed_at, critical_after,
                      dropped_after, restarted, back, retries, served_before_kill, served,
                      overflows)


def seen(after: float | None, what: str) -> str:
    return f"{what} after {after:.1f}s" if after is not None else f"never {what} (replaced first)"


# Envoy's circuit-breaker counters on a caller's upstream cluster (an HTTP/2 pool counts
# its MaxConcurrentRequests as upstream_rq_active_overflow).
OVERFLOW_COUNTERS = ("upstream_rq_active_overflow", "upstream_rq_pending_overflow",
                     "upstream_rq_retry_overflow", "upstream_cx_overflow")


def _overflows(caller: Instance, upstream: str) -> dict[str, int]:
    return {name: upstream_counter(caller, upstream, name) for name in OVERFLOW_COUNTERS}


def _host_success(caller: Instance, callee: Instance) -> int:
    host = probe.host_of(caller, "catalog", callee)
    return host.rq_success if host else 0


# --------------------------------------------------------------------------- 2. rolling


@dataclass
class RestartStep:
    instance_id: str
    at: float  # seconds into the load when its SIGTERM was sent
    stopped_and_started: float  # SIGTERM -> drained -> exited -> started again (s)
    back_after: float  # from the SIGTERM until passing and routed to by every caller (s)


@dataclass
class RollingResult:
    rates: dict[str, float]  # service -> its load's calls/s (sized)
    carried: float  # ListProducts/s cart's sidecar carried before the restarts
    loads: dict[str, LoadReport]  # service -> its load
    steps: list[RestartStep]
    retries: dict[str, int]  # service -> retries its load's caller made

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.loads.values())


def replicated_instances(plan: MeshPlan) -> list[Instance]:
    """Instances of services that run more than one (canary releases included): the only
    ones a restart can take away without taking their service away."""
    counts: dict[str, int] = {}
    for inst in plan.instances():
        counts[inst.service] = counts.get(inst.service, 0) + 1
    return [i for i in plan.instances() if counts[i.service] > 1]


async def rolling_restart(
    plan: MeshPlan, say: Say = quiet, *, catalog_rate: float = 60, payment_rate: float = 20,
    recommendation_rate: float = 5, share: float = 0.1,
) -> RollingResult:
    """Restart every instance of every replicated service, one at a time, the graceful
    way (SIGTERM), while their callers' sidecars carry steady load to each service; the
    next restart starts only once the previous instance is back in every caller's Envoy.

    The rates leave the one instance left of each service room on two shared cores while
    its sibling's Python process starts (a CPU burst of its own): each Recommend also
    makes several catalog calls, and at 100 + 30 + 10 calls/s the remaining catalog
    instance saturated and cart's sidecar shed calls at its MaxConcurrentRequests (64 then).
    On a busier box all three rates shrink alike, so that catalog's stays at most ``share``
    of what cart's sidecar carries to catalog before the restarts: a quiet two-core box
    carries 600 and more, CI with other work on its cores has carried 230, and then 60
    calls/s and the Recommends' fan-out took recommendation's catalog lookups past their
    300 ms budget."""
    cart, storefront = plan.instance("cart-1"), plan.instance("storefront-1")
    victims = replicated_instances(plan)
    await until(lambda: all(probe.serving(plan, probe.callers_of(plan, v.service), v)
                            for v in victims), 60, "every replicated instance routable",
                in_thread=True, not_yet=probe.NOT_ANSWERING)
    # A registered customer: recommendation answers NOT_FOUND for users it does not know.
    async with shop(plan) as s:
        [user_id] = await s.customers(1, "rolling")
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(restoring(plan, say))
        to_catalog = await stack.enter_async_context(caller_channel(plan, cart, "catalog"))
        to_payment = await stack.enter_async_context(
            caller_channel(plan, storefront, "payment"))
        to_recommendation = await stack.enter_async_context(
            caller_channel(plan, storefront, "recommendation"))
        payments = payment_pb2_grpc.PaymentServiceStub(to_payment)
        recommend = recommendation_pb2_grpc.RecommendationServiceStub(to_recommendation)

        async def list_payments(_: int) -> str | None:
            await payments.ListPayments(
                payment_pb2.ListPaymentsRequest(user_id=user_id, page_size=5), timeout=5)
            return None

        async def recommendation(_: int) -> str | None:
            await recommend.Recommend(
                recommendation_pb2.RecommendRequest(user_id=user_id, limit=3), timeout=5)
            return None

        for warm in (catalog_call(to_catalog), list_payments, recommendation):
            await warm_up(warm)
        sized_catalog, carried = await sized(catalog_call(to_catalog), catalog_rate, share)
        scale = sized_catalog / catalog_rate
        rates = {"catalog": sized_catalog, "payment": payment_rate * scale,
                 "recommendation": recommendation_rate * scale}
        say(f"  load: {rates['catalog']:.0f}/s ListProducts as cart (its sidecar carries "
            f"{carried:.0f}/s), {rates['payment']:.0f}/s ListPayments and "
            f"{rates['recommendation']:.1f}/s Recommend as storefront")
        say(f"  restarting, one at a time: {', '.join(v.instance_id for v in victims)}")
        callers = {"catalog": cart, "payment": storefront, "recommendation": storefront}
        before = {s: upstream_counter(c, s, "upstream_rq_retry") for s, c in callers.items()}
        max_seconds = 30 + 30 * len(victims)
        calls = {"catalog": catalog_call(to_catalog), "payment": list_payments,
                 "recommendation": recommendation}
        loads = {
            service: await stack.enter_async_context(background_load(
                call, rate=rates[service], max_seconds=max_seconds))
            for service, call in calls.items()
        }
        load_started = time.monotonic()
        await asyncio.sleep(2)
        steps = []
        for victim in victims:
            t0 = time.monotonic()
            await probe.graceful_restart(plan, victim.instance_id)
            cycled = time.monotonic() - t0
            callers_of_victim = probe.callers_of(plan, victim.service)
            await until(partial(probe.serving, plan, callers_of_victim, victim),
                        60, f"{victim.instance_id} back in every caller's Envoy",
                        in_thread=True, not_yet=probe.NOT_ANSWERING)
            steps.append(RestartStep(victim.instance_id, t0 - load_started, cycled,
                                     time.monotonic() - t0))
            say(f"  {victim.instance_id}: SIGTERM -> drained -> exited -> started in "
                f"{cycled:.1f}s, back in rotation after {steps[-1].back_after:.1f}s")
        await asyncio.sleep(2)
        reports = {}
        for service, (stop, task) in loads.items():
            stop.set()
            reports[service] = await task
        retries = {s: upstream_counter(c, s, "upstream_rq_retry") - before[s]
                   for s, c in callers.items()}
    return RollingResult(rates, carried, reports, steps, retries)


# --------------------------------------------------------------------------- 3. flaky payment


@dataclass
class FlakyPaymentResult:
    load: LoadReport  # PlaceOrder calls (their tags: the state each order ended in)
    audit: OrderAudit
    retries: int  # order's sidecar retries towards payment
    retry_overflow: int  # retries Envoy's retry budget refused


async def flaky_payment(
    plan: MeshPlan, say: Say = quiet, *, unavailable_ratio: float = 0.3, rate: float = 5,
    seconds: float = 15, customers: int = 12,
) -> FlakyPaymentResult:
    """Every payment instance answers ``unavailable_ratio`` of its Charges with UNAVAILABLE
    while customers place orders at ``rate``/s; then every order is audited against the
    payments: CONFIRMED with exactly one capture, or CANCELLED with nothing kept."""
    order = plan.instance("order-1")
    async with shop(plan) as s, restoring(plan, say):
        users = await s.customers(customers, "flaky")
        buyers = Buyers(s, users)
        retries_before = upstream_counter(order, "payment", "upstream_rq_retry")
        overflow_before = upstream_counter(order, "payment", "upstream_rq_retry_overflow")
        await probe.set_payment_fault(plan, unavailable_ratio=unavailable_ratio)
        say(f"  every payment instance now fails {unavailable_ratio:.0%} of its Charges "
            f"(UNAVAILABLE, before touching anything)")
        say(f"  {customers} customers place {rate:.0f} orders/s for {seconds:.0f}s "
            f"(add to cart + PlaceOrder: reserve -> charge -> commit)")
        try:
            report = await open_loop(buyers.purchase, rate=rate, duration=seconds,
                                     max_in_flight=4 * customers, drain_timeout=40)
        finally:
            await probe.set_payment_fault(plan)
        retries = upstream_counter(order, "payment", "upstream_rq_retry") - retries_before
        overflow = (upstream_counter(order, "payment", "upstream_rq_retry_overflow")
                    - overflow_before)
        audit = await audit_orders(s, users)
    return FlakyPaymentResult(report, audit, retries, overflow)


# --------------------------------------------------------------------------- 4. hung payment


@dataclass
class HungPaymentResult:
    during: LoadReport  # Charge as order while payment hangs
    dashboard: LoadReport  # GetDashboard meanwhile (tags: what it said was degraded)
    overflowed: int  # calls order's sidecar refused at its payment limits
    recovered: float  # fault removed -> the mesh healthy again, no host ejected (s)
    after: LoadReport  # Charge as order once the mesh has recovered
    dashboard_after: LoadReport

    @property
    def rejected(self) -> list[float]:
        return self.during.latencies.get("UNAVAILABLE", [])


async def hung_payment(
    plan: MeshPlan, say: Say = quiet, *, delay_ms: int = 30_000, rate: float = 100,
    seconds: float = 10, deadline: float = 2.0, dashboard_rate: float = 10,
    dashboard_seconds: float = 5, after_rate: float = 10,
) -> HungPaymentResult:
    """Every payment instance hangs (``delay_ms`` before answering) while order's sidecar
    carries ``rate`` Charges/s with a ``deadline``: the calls admitted up to order's limit
    towards payment (16 in flight) wait for their deadline, every other one is refused at
    once by the open circuit. Then, payment still hung, the storefront dashboard must
    still answer, with payment marked degraded. Then the fault is removed: once the mesh
    is healthy again (outlier detection has let payment's instances back, which takes
    its ejection time, not a fixed delay) both must answer without a failure, Charges at
    ``after_rate``: recovery is the claim there, not throughput, and at 50/s a busy box
    (CI: Charges at 300 ms p50 next to the dashboards) kept 16 in flight and order's
    sidecar refused the excess at that same limit."""
    order = plan.instance("order-1")

    def overflow() -> int:
        return sum(upstream_counter(order, "payment", suffix) for suffix in
                   ("upstream_rq_active_overflow", "upstream_rq_pending_overflow"))

    async with shop(plan) as s, restoring(plan, say), caller_channel(
        plan, order, "payment"
    ) as channel:
        [user_id] = await s.customers(1, "hung")
        payments = payment_pb2_grpc.PaymentServiceStub(channel)

        async def charge(_: int) -> str | None:
            await payments.Charge(charge_request(user_id), timeout=deadline)
            return None

        async def dashboard(_: int) -> str | None:
            reply = await s.dashboard(user_id)
            return "degraded: " + ",".join(reply.degraded) if reply.degraded else "complete"

        await warm_up(charge)
        await warm_up(dashboard, 5)
        overflow_before = overflow()
        await probe.set_payment_fault(plan, delay_ms=delay_ms)
        say(f"  every payment instance now hangs {delay_ms / 1000:.0f}s before answering")
        say(f"  {rate:.0f} Charges/s as order (deadline {deadline:.0f}s) for {seconds:.0f}s, then "
            f"{dashboard_rate:.0f} dashboards/s for {dashboard_seconds:.0f}s")
        try:
            # One after the other: the refused calls' latency is the claim measured in ms,
            # and the dashboard's fan-out (five services) would compete for the same cores.
            during = await open_loop(charge, rate=rate, duration=seconds,
                                     drain_timeout=deadline + 5)
            board = await open_loop(dashboard, rate=dashboard_rate, duration=dashboard_seconds)
        finally:
            await probe.set_payment_fault(plan)
        overflowed = overflow() - overflow_before
        recovered = await probe.restore(plan)
        say(f"  fault removed; the mesh healthy again after {recovered:.1f}s; "
            f"{after_rate:.0f} Charges/s and the dashboards again for 3s")
        after, board_after = await asyncio.gather(
            open_loop(charge, rate=after_rate, duration=3),
            open_loop(dashboard, rate=dashboard_rate, duration=3),
        )
    return HungPaymentResult(during, board, overflowed, recovered, after, board_after)


# --------------------------------------------------------------------------- 5. NATS killed


@dataclass
class NatsResult:
    load: LoadReport  # purchases
    orders: OrderAudit
    events: EventAudit
    down_for: float  # kill -> JetStream answering again (s)
    backlog_peak: int  # events committed and not yet published, at most, during the outage
    settled_after: float  # end of the purchases -> every consumer caught up (s)


# The services with an outbox, and their SQLite file on a mesh without PostgreSQL.
OUTBOX_SERVICES = (("user", "user.sqlite3"), ("order", "order.sqlite3"),
                   ("payment", "payment.sqlite3"))


def outbox_backlog(plan: MeshPlan) -> int:
    """Events committed by user, order and payment and not yet published to JetStream,
    read in each one's own database, whichever engine the mesh runs on."""
    total = 0
    databases = Postgres(plan)
    for service, file_name in OUTBOX_SERVICES:
        target = databases.state_of(service, file_name)
        if isinstance(target, Path) and not target.exists():
            continue
        backlog = count_apart(target, "SELECT count(*) FROM outbox WHERE sent_us IS NULL",
                              timeout=5)
        if backlog is None:
            where = f" in {target}" if isinstance(target, Path) else ""  # a URL has a password
            raise RuntimeError(f"cannot read {service}'s outbox{where}")
        total += backlog
    return total


def events_settled(plan: MeshPlan) -> bool:
    return outbox_backlog(plan) == 0 and consumers_idle(plan)


def jetstream_up(plan: MeshPlan) -> bool:
    """nats-server answers its JetStream health check (its own monitor port)."""
    try:
        get_text(f"{Nats(plan).monitor_url}/healthz?js-enabled-only=true", timeout=1)
    except HTTPFailure:
        return False
    return True


async def nats_killed(
    plan: MeshPlan, say: Say = quiet, *, rate: float = 4, seconds: float = 14,
    customers: int = 8, kill_after: float = 3, down_for: float = 4,
) -> NatsResult:
    """kill -9 the NATS server while customers buy and keep it down ``down_for`` seconds
    (supervisord would restart it within a second; holding it down makes the outboxes
    fill up), then start it again. Every order must become exactly its notifications and
    its analytics effect, none lost or doubled."""
    async with shop(plan) as s, restoring(plan, say):
        users = await s.customers(customers, "bus")
        await until(lambda: events_settled(plan), 60, "earlier events to settle",
                    in_thread=True, not_yet=probe.NOT_ANSWERING)
        sales_before = await s.sales()
        buyers = Buyers(s, users)
        name = f"infra:{NATS_INSTANCE}"
        sup = Supervisor(plan)
        peak = 0

        async def watch_backlog(stop: asyncio.Event) -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, await asyncio.to_thread(outbox_backlog, plan))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)

        say(f"  {customers} customers buy {rate:.0f} orders/s for {seconds:.0f}s")
        async with background_load(buyers.purchase, rate=rate, max_seconds=seconds,
                                   max_in_flight=4 * customers) as (_, load):
            watching = asyncio.Event()
            watcher = asyncio.create_task(watch_backlog(watching))
            try:
                await asyncio.sleep(kill_after)
                killed = await probe.kill_9(plan, name)
                t_kill = time.monotonic()
                # supervisord restarts it at once; stop that, to hold the broker down.
                await asyncio.to_thread(sup.stop, name)
                say(f"  kill -9 nats-server (pid {killed}) with purchases in flight; "
                    f"held down {down_for:.0f}s")
                await asyncio.sleep(down_for)
                await asyncio.to_thread(sup.start, name)
                await until(lambda: jetstream_up(plan), 60, "JetStream answering again",
                            in_thread=True, not_yet=probe.NOT_ANSWERING)
                down = time.monotonic() - t_kill
                say(f"  NATS started again; JetStream answering {down:.1f}s after the kill")
                report = await load
            finally:
                watching.set()
                await watcher
        t_end = time.monotonic()
        settled = await until(lambda: events_settled(plan), 90,
                              "every outbox published and every consumer caught up", step=0.25,
                              in_thread=True, not_yet=probe.NOT_ANSWERING)
        say(f"  outbox backlog peaked at {peak} events; all delivered and acked "
            f"{time.monotonic() - t_end:.1f}s after the last purchase")
        orders = await audit_orders(s, users)
        events = await audit_events(s, plan, users, sales_before)
    return NatsResult(report, orders, events, down, peak, settled)


# --------------------------------------------------------------------------- 6. denied


@dataclass
class DeniedResult:
    codes: dict[str, str] = field(default_factory=dict)  # call -> status code name
    counted: int = 0  # rbac.denied on payment's sidecars, before -> after


async def caller_outside_the_call_graph(plan: MeshPlan, say: Say = quiet) -> DeniedResult:
    """storefront may list payments but only order may charge: storefront's sidecar has a
    listener to payment, and Charge through it is refused by payment's sidecar."""
    storefront = plan.instance("storefront-1")
    payments = [i for i in plan.instances() if i.service == "payment"]
    result = DeniedResult()
    before = sum(await asyncio.gather(*(asyncio.to_thread(public_http_counter, p, "rbac.denied")
                                         for p in payments)))
    async with caller_channel(plan, storefront, "payment") as channel:
        stub = payment_pb2_grpc.PaymentServiceStub(channel)
        calls = {
            "ListPayments": stub.ListPayments(
                payment_pb2.ListPaymentsRequest(user_id="chaos-denied", page_size=1), timeout=5),
            "Charge": stub.Charge(charge_request("chaos-denied"), timeout=5),
        }
        for name, pending in calls.items():
            try:
                await pending
                result.codes[name] = "OK"
            except grpc.aio.AioRpcError as error:
                result.codes[name] = error.code().name
    after = sum(await asyncio.gather(*(asyncio.to_thread(public_http_counter, p, "rbac.denied")
                                        for p in payments)))
    result.counted = after - before
    say(f"  as storefront: ListPayments -> {result.codes['ListPayments']}, "
        f"Charge -> {result.codes['Charge']}; payment's sidecars counted {result.counted} "
        "denied (http.public_listener.rbac.denied)")
    return result
