"""The whole shop in-process: user, catalog, inventory, cart, payment and order, each a real
gRPC server built by the service's own ``app.build`` (what ``python -m services.<name>``
serves) on its own SQLite file (or its own PostgreSQL database), wired by targets.

Use it from any test that needs real services talking to each other:

    async with running_shop(tmp_path) as shop:
        user = await shop.register()
        await shop.add_to_cart(user.user_id, "sku-1001", 2)
        order = await shop.place_order(user.user_id, "key-1")

``shop.targets`` holds every server's "127.0.0.1:<port>" (for a service under test that
calls these as upstreams). With ``event_settings`` (a NATS URL and the tests' quick
retries) the builds run their events too, as each service's main does; ``shop.events``
holds each one's ServiceEvents (its outbox relay and consumers). The order server can
be stopped and started again on the same database (``stop_order``/``start_order``), as a
crashed and restarted process would be. ``Gate`` holds one RPC of an in-process server
at a point the test chooses; ``register_user`` registers a customer through any
UserService stub (the mesh tests' too).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from argon2 import PasswordHasher
from meshmart.cart.v1 import cart_pb2, cart_pb2_grpc
from meshmart.catalog.v1 import catalog_pb2_grpc
from meshmart.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from meshmart.order.v1 import order_pb2, order_pb2_grpc
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from services.cart import app as cart_app
from services.cart.settings import CartSettings
from services.catalog import app as catalog_app
from services.inventory import app as inventory_app
from services.inventory.settings import InventorySettings
from services.kit.config import ServiceConfig
from services.kit.db import Synchronous
from services.kit.events import EventSettings, ServiceEvents
from services.kit.server import Build, Service
from services.kit.testing import running_service
from services.order import app as order_app
from services.order.settings import OrderSettings
from services.payment import app as payment_app
from services.payment.faults import Fault
from services.payment.settings import PaymentSettings
from services.user import app as user_app
from services.user.passwords import Passwords
from services.user.settings import UserSettings

# The services running_shop starts (each with a database of its own).
SERVICES = ("user", "catalog", "inventory", "cart", "payment", "order")
# Deadline of every call the helpers make; generous, the machine is shared.
TIMEOUT = 10.0
PASSWORD = "correct horse battery"
CAPTURE_CARD = "4242424242424242"
DECLINE_CARD = "4000000000000002"
INSUFFICIENT_FUNDS_CARD = "4000000000009995"
ADDRESS = order_pb2.Address(
    name="Ada Lovelace",
    line1="12 Analytical Row",
    city="London",
    postal_code="N1 7AA",
    country="GB",
)
# Short call deadlines, no background sweep: tests decide when recovery runs.
TEST_ORDER_SETTINGS = OrderSettings(
    call_timeout_seconds=2.0,
    payment_timeout_seconds=5.0,
    reservation_ttl_seconds=300,
    sweep_interval_seconds=0,
)


async def register_user(
    users: user_pb2_grpc.UserServiceAsyncStub,
    email: str | None = None,
    full_name: str = "Ada Lovelace",
    *,
    timeout_seconds: float = TIMEOUT,
) -> user_pb2.User:
    """A new customer, with the tests' PASSWORD (a fresh e-mail address unless given)."""
    response: user_pb2.RegisterResponse = await users.Register(
        user_pb2.RegisterRequest(
            email=email or f"{uuid.uuid4().hex[:12]}@example.com",
            password=PASSWORD,
            full_name=full_name,
        ),
        timeout=timeout_seconds,
    )
    return response.user


def card(number: str = CAPTURE_CARD) -> payment_pb2.Card:
    return payment_pb2.Card(number=number, exp_month=12, exp_year=2099, cvc="123")


@dataclass
class Gate:
    """Holds calls of one RPC: ``entered`` is set when a call arrives; it proceeds once
    ``release()`` is called (never, to play a hung upstream).

    ``after=False`` holds the call before the real handler runs (the upstream has done
    nothing); ``after=True`` lets the handler act and holds only its answer (the upstream
    acted, the caller never hears of it).
    """

    after: bool = False
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.opened.set()

    async def hold(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if not self.after:
            self.entered.set()
            await self.opened.wait()
            return await call()
        result = await call()
        self.entered.set()
        await self.opened.wait()
        return result


class _Gates(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Holds the RPCs named "<service>.<Method>" (e.g. "payment.Charge") at their Gate.

    Runs inside the kit's interceptor, right around the handler, as a gated servicer
    would: the kit's request scope and error mapping see the held call as any other.
    """

    def __init__(self, gates: Mapping[str, Gate]) -> None:
        self._gates = gates

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        # "/meshmart.payment.v1.PaymentService/Charge" -> "payment.Charge"
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        gate = self._gates.get(f"{service.split('.')[1]}.{method}") if "." in service else None
        if gate is None or handler is None or handler.unary_unary is None:
            return handler
        behaviour = handler.unary_unary

        async def gated(request: Any, context: Any) -> Any:
            return await gate.hold(lambda: behaviour(request, context))

        return grpc.unary_unary_rpc_method_handler(
            gated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def service_config(
    name: str,
    data_dir: Path,
    upstreams: Mapping[str, str] | None = None,
    database_urls: Mapping[str, str] | None = None,
) -> ServiceConfig:
    """What ``build`` reads, as load_config would give it: files under ``data_dir``, or
    the service's PostgreSQL database when ``database_urls`` names one."""
    return ServiceConfig(
        name=name,
        port=1,  # a placeholder: running_service binds a free port
        data_dir=data_dir,
        database_url=(database_urls or {}).get(name, ""),
        run_dir=data_dir,
        log_level="DEBUG",
        drain_seconds=0.0,
        upstreams=dict(upstreams or {}),
    )


class Kept:
    """A build that keeps the Service it returned, for a test to read (its events)."""

    def __init__(self, build: Build) -> None:
        self._build = build
        self.service: Service | None = None

    def __call__(self, config: ServiceConfig, stack: contextlib.AsyncExitStack) -> Service:
        self.service = self._build(config, stack)
        return self.service

    @property
    def events(self) -> ServiceEvents | None:
        return None if self.service is None else self.service.events


def _stub(factory: Callable[[grpc.aio.Channel], Any], channel: grpc.aio.Channel) -> Any:
    # grpc is untyped, so mypy cannot pick a stub's aio overload by itself.
    return factory(channel)


@dataclass
class Shop:
    targets: dict[str, str]
    user: user_pb2_grpc.UserServiceAsyncStub
    catalog: catalog_pb2_grpc.CatalogServiceAsyncStub
    inventory: inventory_pb2_grpc.InventoryServiceAsyncStub
    cart: cart_pb2_grpc.CartServiceAsyncStub
    payment: payment_pb2_grpc.PaymentServiceAsyncStub
    payment_admin: payment_pb2_grpc.PaymentAdminServiceAsyncStub
    order_process: OrderProcess
    # Each service's events, by service (only with running_shop's event_settings).
    events: dict[str, ServiceEvents] = field(default_factory=dict)

    @property
    def order(self) -> order_pb2_grpc.OrderServiceAsyncStub:
        """The order stub of the running order server (it changes with a restart)."""
        return self.order_process.stub

    async def stop_order(self) -> None:
        """Stop the order server as a killed process would end: in-flight sagas are cut
        where they are, nothing is compensated."""
        await self.order_process.stop()

    async def start_order(self) -> None:
        """Start order again on the same database; returns once startup recovery ran."""
        await self.order_process.start()
        self.targets["order"] = self.order_process.target

    # -- shortcuts for the usual steps of a purchase ------------------------------------

    async def register(
        self, email: str | None = None, full_name: str = "Ada Lovelace"
    ) -> user_pb2.User:
        return await register_user(self.user, email, full_name)

    async def login(self, email: str) -> user_pb2.LoginResponse:
        response: user_pb2.LoginResponse = await self.user.Login(
            user_pb2.LoginRequest(email=email, password=PASSWORD), timeout=TIMEOUT
        )
        return response

    async def add_to_cart(self, user_id: str, product_id: str, quantity: int = 1) -> cart_pb2.Cart:
        response: cart_pb2.AddItemResponse = await self.cart.AddItem(
            cart_pb2.AddItemRequest(user_id=user_id, product_id=product_id, quantity=quantity),
            timeout=TIMEOUT,
        )
        return response.cart

    async def get_cart(self, user_id: str) -> cart_pb2.Cart:
        response: cart_pb2.GetCartResponse = await self.cart.GetCart(
            cart_pb2.GetCartRequest(user_id=user_id), timeout=TIMEOUT
        )
        return response.cart

    async def place_order(
        self,
        user_id: str,
        idempotency_key: str,
        card_number: str = CAPTURE_CARD,
    ) -> order_pb2.Order:
        response: order_pb2.PlaceOrderResponse = await self.order.PlaceOrder(
            order_pb2.PlaceOrderRequest(
                user_id=user_id,
                idempotency_key=idempotency_key,
                card=card(card_number),
                shipping_address=ADDRESS,
            ),
            timeout=TIMEOUT,
        )
        return response.order

    async def get_order(self, user_id: str, order_id: str) -> order_pb2.Order:
        response: order_pb2.GetOrderResponse = await self.order.GetOrder(
            order_pb2.GetOrderRequest(user_id=user_id, order_id=order_id), timeout=TIMEOUT
        )
        return response.order

    async def stock(self, *product_ids: str) -> dict[str, tuple[int, int]]:
        """product_id -> (available, reserved)."""
        response: inventory_pb2.GetStockResponse = await self.inventory.GetStock(
            inventory_pb2.GetStockRequest(product_ids=product_ids), timeout=TIMEOUT
        )
        return {item.product_id: (item.available, item.reserved) for item in response.items}

    async def payments(self, user_id: str) -> list[payment_pb2.Payment]:
        response: payment_pb2.ListPaymentsResponse = await self.payment.ListPayments(
            payment_pb2.ListPaymentsRequest(user_id=user_id, page_size=100), timeout=TIMEOUT
        )
        return list(response.payments)

    async def set_payment_fault(self, unavailable_ratio: float = 0.0, delay_ms: int = 0) -> None:
        await self.payment_admin.SetFault(
            payment_pb2.SetFaultRequest(unavailable_ratio=unavailable_ratio, delay_ms=delay_ms),
            timeout=TIMEOUT,
        )


class OrderProcess:
    """The order service as one process runs it (``services.order.app.build``: own DB
    connection, channels, saga), so a test can stop it mid-saga and start a new one on
    the same file."""

    def __init__(
        self,
        data_dir: Path,
        upstreams: Mapping[str, str],
        settings: OrderSettings,
        gates: _Gates,
        event_settings: EventSettings | None = None,
        database_urls: Mapping[str, str] | None = None,
    ) -> None:
        self._data_dir = data_dir
        self._database_urls = dict(database_urls or {})
        self._upstreams = dict(upstreams)
        self._settings = settings
        self._gates = gates
        self._event_settings = event_settings
        self.events: ServiceEvents | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._stub: order_pb2_grpc.OrderServiceAsyncStub | None = None
        self._client: grpc.aio.Channel | None = None
        self.target = ""

    @property
    def stub(self) -> order_pb2_grpc.OrderServiceAsyncStub:
        if self._stub is None:
            raise RuntimeError("the order server is stopped")
        return self._stub

    async def start(self) -> None:
        """Returns once the on_start hooks (startup recovery) ran, as serve() runs them."""
        if self._stack is not None:
            raise RuntimeError("the order server is already running")
        async with contextlib.AsyncExitStack() as stack:
            config = service_config(
                "order", self._data_dir, self._upstreams, self._database_urls
            )
            build = Kept(partial(
                order_app.build, settings=self._settings, event_settings=self._event_settings
            ))
            self.target = await stack.enter_async_context(
                running_service(config, build, inner=[self._gates])
            )
            self.events = build.events
            self._stack = stack.pop_all()
        # The tests' channel outlives the server, so a call in flight when the server
        # stops fails as it would against a killed process (UNAVAILABLE), not locally.
        self._client = grpc.aio.insecure_channel(self.target)
        self._stub = _stub(order_pb2_grpc.OrderServiceStub, self._client)

    async def stop(self) -> None:
        stack, self._stack, self._stub = self._stack, None, None
        client, self._client = self._client, None
        if stack is not None:
            await stack.aclose()
        if client is not None:
            # With a grace, so a call in flight gets the stopped server's answer (an
            # error) first; closing at once cancelled it locally (CancelledError) when
            # that answer had not arrived yet.
            await client.close(grace=5)


@contextlib.asynccontextmanager
async def running_shop(
    data_dir: Path,
    *,
    order_settings: OrderSettings = TEST_ORDER_SETTINGS,
    gates: Mapping[str, Gate] | None = None,
    money_synchronous: Synchronous | None = None,
    event_settings: EventSettings | None = None,
    database_urls: Mapping[str, str] | None = None,
) -> AsyncIterator[Shop]:
    """Every service of the shop on 127.0.0.1, each built by its own ``app.build`` with
    its database under ``data_dir``, or at ``database_urls[service]`` (PostgreSQL; see
    harness/postgres.py ``Databases.urls``).

    ``gates`` maps "<service>.<Method>" (e.g. "payment.Charge", "inventory.Commit") to a
    Gate holding that RPC. ``money_synchronous`` overrides what payment and order commit
    with (FULL, their stores' SYNCHRONOUS), for bench/durable_commits.py to compare.
    ``event_settings``: the services' events on (else off, as without MESHMART_NATS_URL).
    """
    gates = gates or {}
    payment_settings = PaymentSettings(Fault())
    if money_synchronous is not None:
        order_settings = replace(order_settings, synchronous=money_synchronous)
        payment_settings = replace(payment_settings, synchronous=money_synchronous)
    held = _Gates(gates)
    async with contextlib.AsyncExitStack() as stack:

        events: dict[str, ServiceEvents] = {}

        async def serve(name: str, build: Build) -> str:
            kept = Kept(build)
            target = await stack.enter_async_context(
                running_service(
                    service_config(name, data_dir, targets, database_urls), kept, inner=[held]
                )
            )
            if kept.events is not None and kept.events.enabled:
                events[name] = kept.events
            return target

        async def channel(target: str) -> grpc.aio.Channel:
            return await stack.enter_async_context(grpc.aio.insecure_channel(target))

        targets: dict[str, str] = {}
        targets["user"] = await serve(
            "user",
            partial(
                user_app.build,
                settings=UserSettings(token_ttl_seconds=900),
                # Real Argon2 with cheap parameters: the shop's tests are not about hashing.
                passwords=Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)),
                event_settings=event_settings,
            ),
        )
        targets["catalog"] = await serve("catalog", catalog_app.build)
        # No sweep within a test: every ledger operation expires what is due anyway.
        targets["inventory"] = await serve(
            "inventory",
            partial(
                inventory_app.build,
                settings=InventorySettings(3600.0),
                event_settings=event_settings,
            ),
        )
        targets["cart"] = await serve(
            "cart",
            partial(
                cart_app.build,
                settings=CartSettings(currency="EUR", catalog_timeout_seconds=2.0),
            ),
        )
        targets["payment"] = await serve(
            "payment",
            partial(payment_app.build, settings=payment_settings, event_settings=event_settings),
        )

        order = OrderProcess(
            data_dir, targets, order_settings, held, event_settings, database_urls
        )
        stack.push_async_callback(order.stop)
        await order.start()
        targets["order"] = order.target
        if order.events is not None and order.events.enabled:
            events["order"] = order.events

        payment_channel = await channel(targets["payment"])
        shop = Shop(
            targets=targets,
            user=_stub(user_pb2_grpc.UserServiceStub, await channel(targets["user"])),
            catalog=_stub(catalog_pb2_grpc.CatalogServiceStub, await channel(targets["catalog"])),
            inventory=_stub(
                inventory_pb2_grpc.InventoryServiceStub, await channel(targets["inventory"])
            ),
            cart=_stub(cart_pb2_grpc.CartServiceStub, await channel(targets["cart"])),
            payment=_stub(payment_pb2_grpc.PaymentServiceStub, payment_channel),
            payment_admin=_stub(payment_pb2_grpc.PaymentAdminServiceStub, payment_channel),
            order_process=order,
            events=events,
        )
        try:
            yield shop
        finally:
            # Open gates let held calls finish, so no server waits on them while stopping.
            for gate in gates.values():
                gate.release()
