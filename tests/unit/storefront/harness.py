"""Storefront and every upstream it calls, as real in-process gRPC servers.

user, payment and catalog are the real services on SQLite in tmp_path; recommendation is
the real one (and can be stopped mid-test); order is the in-process order history from the
recommendation tests, answering ListOrders and ListRecentOrders from a list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path

import grpc
from argon2 import PasswordHasher
from meshmart.common.v1 import common_pb2
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc
from meshmart.storefront.v1 import storefront_pb2_grpc
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from services.catalog.servicer import CatalogServicer
from services.catalog.servicer import service_spec as catalog_spec
from services.catalog.store import DB_FILE as CATALOG_DB
from services.catalog.store import MIGRATIONS as CATALOG_MIGRATIONS
from services.catalog.store import load_catalog
from services.kit.clients import channel_to
from services.kit.db import Database
from services.kit.testing import running_server
from services.payment.cards import authorize
from services.payment.domain import PaymentProcessor
from services.payment.faults import Fault, FaultInjector
from services.payment.model import new_id
from services.payment.servicer import service_specs as payment_specs
from services.payment.store import MIGRATIONS as PAYMENT_MIGRATIONS
from services.payment.store import PaymentStore
from services.recommendation import app as recommendation_app
from services.recommendation.settings import RecommendationSettings
from services.storefront import app as storefront_app
from services.storefront.dashboard import Timeouts
from services.user.domain import UserAccounts
from services.user.keys import SigningKey
from services.user.passwords import Passwords
from services.user.servicer import UserServicer
from services.user.servicer import service_spec as user_spec
from services.user.store import DB_FILE as USER_DB
from services.user.store import MIGRATIONS as USER_MIGRATIONS
from services.user.store import UserStore
from services.user.tokens import TokenIssuer
from tests.unit.recommendation import fake_order
from tests.unit.recommendation.fake_order import RecentOrdersServicer

CALL_TIMEOUT = 5.0
# Argon2 at production cost takes seconds on a loaded CI box; the dashboard does not care.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
# Generous next to in-process latency (CI boxes are loaded), small next to the hangs the
# tests inject; recommendation's own budget (0.5 + 0.8 s) fits inside its 1.5 s.
TIMEOUTS = Timeouts(user=1.0, order=1.0, payment=1.0, recommendation=1.5, catalog=1.0)
RECOMMENDATION_SETTINGS = RecommendationSettings(
    order_timeout=0.5, catalog_timeout=0.8, model_ttl=0.0
)


@dataclass
class Shop:
    storefront: storefront_pb2_grpc.StorefrontServiceAsyncStub
    users: user_pb2_grpc.UserServiceAsyncStub
    payments: payment_pb2_grpc.PaymentServiceAsyncStub
    payment_admin: payment_pb2_grpc.PaymentAdminServiceAsyncStub
    orders: RecentOrdersServicer
    recommendation: AsyncExitStack  # close it to stop the recommendation server

    async def register(self, email: str = "ann@example.com") -> str:
        response: user_pb2.RegisterResponse = await self.users.Register(
            user_pb2.RegisterRequest(email=email, password="correct horse", full_name="Ann"),
            timeout=CALL_TIMEOUT,
        )
        return response.user.user_id

    async def pay(self, user_id: str, order_id: str) -> payment_pb2.Payment:
        response: payment_pb2.ChargeResponse = await self.payments.Charge(
            payment_pb2.ChargeRequest(
                idempotency_key=f"{order_id}:charge",
                order_id=order_id,
                user_id=user_id,
                amount=common_pb2.Money(amount_minor=1290, currency="EUR"),
                card=payment_pb2.Card(
                    number="4242424242424242", exp_month=12, exp_year=2099, cvc="123"
                ),
            ),
            timeout=CALL_TIMEOUT,
        )
        return response.payment


@asynccontextmanager
async def running_shop(
    tmp_path: Path, signing_key: SigningKey, timeouts: Timeouts = TIMEOUTS
) -> AsyncIterator[Shop]:
    async with AsyncExitStack() as stack:
        catalog_db = stack.enter_context(
            closing(Database(tmp_path / CATALOG_DB, CATALOG_MIGRATIONS))
        )
        catalog, _ = load_catalog(catalog_db)
        catalog_target = await stack.enter_async_context(
            running_server([catalog_spec(CatalogServicer(catalog))])
        )

        user_db = stack.enter_context(closing(Database(tmp_path / USER_DB, USER_MIGRATIONS)))
        accounts = UserAccounts(
            UserStore(user_db),
            Passwords(CHEAP_HASHER),
            TokenIssuer(signing_key, ttl_seconds=600),
        )
        user_target = await stack.enter_async_context(
            running_server([user_spec(UserServicer(accounts))])
        )

        payment_db = stack.enter_context(
            closing(Database(tmp_path / "payment.sqlite3", PAYMENT_MIGRATIONS))
        )
        processor = PaymentProcessor(
            PaymentStore(payment_db, new_id), authorize, lambda: dt.datetime.now(dt.UTC)
        )
        payment_target = await stack.enter_async_context(
            running_server(payment_specs(processor, FaultInjector(Fault())))
        )

        orders = RecentOrdersServicer()  # type: ignore[abstract]
        order_target = await stack.enter_async_context(running_server([fake_order.spec(orders)]))

        channels = {
            name: await stack.enter_async_context(channel_to(target))
            for name, target in (
                ("user", user_target),
                ("order", order_target),
                ("payment", payment_target),
                ("catalog", catalog_target),
            )
        }
        # recommendation has its own exit stack so a test can stop it alone.
        recommendation = AsyncExitStack()
        stack.push_async_callback(recommendation.aclose)
        recommendation_target = await recommendation.enter_async_context(
            running_server(
                [
                    recommendation_app.build_spec(
                        channels["order"], channels["catalog"], RECOMMENDATION_SETTINGS
                    )
                ]
            )
        )
        channels["recommendation"] = await stack.enter_async_context(
            channel_to(recommendation_target)
        )
        storefront_target = await stack.enter_async_context(
            running_server([storefront_app.build_spec(channels, timeouts)])
        )

        client = await stack.enter_async_context(grpc.aio.insecure_channel(storefront_target))
        users = await stack.enter_async_context(grpc.aio.insecure_channel(user_target))
        payments = await stack.enter_async_context(grpc.aio.insecure_channel(payment_target))
        yield Shop(
            storefront=storefront_pb2_grpc.StorefrontServiceStub(client),  # type: ignore[arg-type]
            users=user_pb2_grpc.UserServiceStub(users),  # type: ignore[arg-type]
            payments=payment_pb2_grpc.PaymentServiceStub(payments),  # type: ignore[arg-type]
            payment_admin=payment_pb2_grpc.PaymentAdminServiceStub(payments),  # type: ignore[arg-type]
            orders=orders,
            recommendation=recommendation,
        )
