"""PlaceOrderSaga's decisions, against in-memory upstreams (fakes.py) and a real SQLite file.

These cover the failure orders real servers cannot produce on cue: an answer lost after
the upstream acted, a compensation that itself fails, a process stopped inside each step.
test_order_saga.py proves the same behaviour end to end against the real services.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from harness.postgres import Databases
from services.kit.db import Database
from services.kit.errors import FailedPrecondition, NotFound, Unavailable
from services.order.model import (
    Address,
    Card,
    Contact,
    Order,
    OrderState,
    PaymentState,
    PlaceOrderCommand,
    SagaStep,
)
from services.order.ports import FailureKind
from services.order.saga import (
    INTERRUPTED_BEFORE_PAYMENT,
    INTERRUPTED_DURING_PAYMENT,
    PlaceOrderSaga,
)
from services.order.settings import OrderSettings
from services.order.store import MIGRATIONS, OrderStore
from tests.unit.order.fakes import FakeCarts, FakeInventory, FakePayments, FakeUsers, Faults

USER = "usr-1"
GOOD_CARD = Card("4242424242424242", 12, 2030, "123")
DECLINED_CARD = Card("4000000000000002", 12, 2030, "123")
ADDRESS = Address("Ada Lovelace", "1 Analytical St", "", "London", "N1 1AA", "GB")


@dataclass
class Shop:
    """The saga under test, its store, and the fake world it acts on."""

    faults: Faults
    users: FakeUsers
    carts: FakeCarts
    inventory: FakeInventory
    payments: FakePayments
    start_process: Callable[[], tuple[PlaceOrderSaga, OrderStore]]
    saga: PlaceOrderSaga
    store: OrderStore

    async def restart(self) -> list[Order]:
        """Stop the saga as a dying process would (its tasks cancelled, nothing
        compensated), then start a new one on the same database and let it recover."""
        await self.saga.close()
        self.saga, self.store = self.start_process()
        return await self.saga.recover()


@pytest.fixture
async def shop(databases: Databases) -> AsyncIterator[Shop]:
    """The saga with fake upstreams, its store on SQLite and again on PostgreSQL."""
    faults = Faults()
    users, carts = FakeUsers(faults), FakeCarts(faults)
    inventory = FakeInventory(faults, {"sku-1": 10, "sku-2": 1})
    payments = FakePayments(faults)
    users.users[USER] = Contact(USER, "ada@example.com", "Ada Lovelace", "")
    carts.add(USER, "sku-1", 2, 1250)
    carts.add(USER, "sku-2", 1, 990)
    opened: list[Database] = []

    def start_process() -> tuple[PlaceOrderSaga, OrderStore]:
        db = Database(databases.target("order", "order.sqlite3"), MIGRATIONS)
        opened.append(db)
        store = OrderStore(db)
        saga = PlaceOrderSaga(
            store,
            users=users,
            carts=carts,
            inventory=inventory,
            payments=payments,
            settings=OrderSettings(sweep_interval_seconds=0),
        )
        return saga, store

    shop = Shop(faults, users, carts, inventory, payments, start_process, *start_process())
    yield shop
    await shop.saga.close()
    for db in opened:
        db.close()


def order_for(key: str = "k-1", card: Card = GOOD_CARD) -> PlaceOrderCommand:
    return PlaceOrderCommand(USER, key, card, ADDRESS)


async def test_happy_path_confirms_commits_stock_captures_payment_and_clears_cart(
    shop: Shop,
) -> None:
    order = await shop.saga.place(order_for())

    assert order.state is OrderState.CONFIRMED and order.step is SagaStep.DONE
    assert order.total.amount_minor == 2 * 1250 + 990
    assert shop.inventory.reservations[order.order_id].state == "COMMITTED"
    assert shop.inventory.available == {"sku-1": 8, "sku-2": 0}
    assert shop.payments.states() == [PaymentState.CAPTURED]
    assert order.payment_state is PaymentState.CAPTURED and order.payment_id == "pay-1"
    assert USER not in shop.carts.carts


async def test_declined_card_cancels_and_gives_the_stock_back(shop: Shop) -> None:
    order = await shop.saga.place(order_for(card=DECLINED_CARD))

    assert order.state is OrderState.CANCELLED and order.step is SagaStep.DONE
    assert order.cancel_reason == "payment declined: card_declined"
    assert shop.inventory.available == {"sku-1": 10, "sku-2": 1}
    assert shop.payments.states() == [PaymentState.DECLINED]
    assert shop.carts.carts[USER], "a cancelled order leaves the cart alone"


async def test_out_of_stock_names_the_product_and_charges_nothing(shop: Shop) -> None:
    shop.carts.carts[USER] = []
    shop.carts.add(USER, "sku-1", 1, 1250)
    shop.carts.add(USER, "sku-2", 2, 990)  # 1 in stock

    order = await shop.saga.place(order_for())

    assert order.state is OrderState.CANCELLED
    assert order.cancel_reason == "out of stock: sku-2"
    assert shop.payments.by_key == {}


async def test_unreachable_payment_cancels_releases_and_finds_no_charge(shop: Shop) -> None:
    shop.faults.failing["charge"] = FailureKind.UNREACHABLE

    order = await shop.saga.place(order_for())

    assert order.state is OrderState.CANCELLED and order.step is SagaStep.DONE
    assert order.cancel_reason == "payment service unavailable"
    assert order.payment_state is PaymentState.NONE
    assert shop.inventory.available == {"sku-1": 10, "sku-2": 1}


async def test_charge_whose_answer_was_lost_is_found_and_refunded(shop: Shop) -> None:
    shop.faults.lose_answer.add("charge")

    order = await shop.saga.place(order_for())

    assert order.state is OrderState.CANCELLED and order.step is SagaStep.DONE
    assert shop.payments.states() == [PaymentState.REFUNDED]
    assert order.payment_state is PaymentState.REFUNDED and order.payment_id == "pay-1"
    assert shop.inventory.available == {"sku-1": 10, "sku-2": 1}


async def test_commit_whose_answer_was_lost_is_recognised_and_confirmed(shop: Shop) -> None:
    shop.faults.lose_answer.add("commit")

    order = await shop.saga.place(order_for())

    assert order.state is OrderState.CONFIRMED
    assert shop.inventory.reservations[order.order_id].state == "COMMITTED"
    assert shop.payments.states() == [PaymentState.CAPTURED]


async def test_unreachable_commit_refunds_and_releases(shop: Shop) -> None:
    shop.faults.failing["commit"] = FailureKind.UNREACHABLE

    order = await shop.saga.place(order_for())

    assert order.state is OrderState.CANCELLED and order.step is SagaStep.DONE
    assert order.cancel_reason == "inventory service unavailable"
    assert shop.payments.states() == [PaymentState.REFUNDED]
    assert shop.inventory.available == {"sku-1": 10, "sku-2": 1}


async def test_failed_refund_stays_owed_until_recovery_pays_it_back(shop: Shop) -> None:
    shop.faults.failing["commit"] = FailureKind.REFUSED  # reservation expired
    shop.faults.failing["refund"] = FailureKind.UNREACHABLE

    order = await shop.saga.place(order_for())

    assert order.state is OrderState.CANCELLED
    assert order.cancel_reason == "stock no longer reserved"
    assert order.step is SagaStep.COMPENSATING
    assert shop.payments.states() == [PaymentState.CAPTURED]

    del shop.faults.failing["refund"]
    [recovered] = await shop.saga.recover()

    assert recovered.order_id == order.order_id
    assert recovered.state is OrderState.CANCELLED and recovered.step is SagaStep.DONE
    assert shop.payments.states() == [PaymentState.REFUNDED]


Outcome = tuple[OrderState, list[PaymentState], dict[str, int]]
CONSISTENT_CANCEL: Outcome = (OrderState.CANCELLED, [], {"sku-1": 10, "sku-2": 1})
CONSISTENT_SALE: Outcome = (OrderState.CONFIRMED, [PaymentState.CAPTURED], {"sku-1": 8, "sku-2": 0})


@pytest.mark.parametrize(
    ("stop_at", "expected"),
    [
        # Stopped while the call is in flight, before the upstream acted...
        ("reserve", CONSISTENT_CANCEL),
        ("charge", CONSISTENT_CANCEL),
        ("commit", CONSISTENT_SALE),
        # ...or after it acted, before the saga stored the answer.
        ("reserve:done", CONSISTENT_CANCEL),
        ("charge:done", CONSISTENT_SALE),
        ("commit:done", CONSISTENT_SALE),
    ],
)
async def test_restart_inside_each_step_ends_the_order_consistently(
    shop: Shop,
    stop_at: str,
    expected: Outcome,
) -> None:
    operation, _, after = stop_at.partition(":")
    gates = shop.faults.gates_after if after else shop.faults.gates
    gates[operation] = asyncio.Event()  # never opens: the process "dies" there
    placing = asyncio.create_task(shop.saga.place(order_for()))
    await shop.faults.reached(stop_at).wait()
    del gates[operation]

    [recovered] = await shop.restart()

    state, payments, available = expected
    assert recovered.state is state and recovered.step is SagaStep.DONE
    if state is OrderState.CANCELLED:
        assert recovered.cancel_reason == INTERRUPTED_BEFORE_PAYMENT
    assert shop.payments.states() == payments
    assert shop.inventory.available == available
    assert placing.cancelled()


async def test_restart_with_payment_unreachable_cancels_now_and_refunds_later(
    shop: Shop,
) -> None:
    shop.faults.gates_after["charge"] = asyncio.Event()
    placing = asyncio.create_task(shop.saga.place(order_for()))
    await shop.faults.reached("charge:done").wait()  # charged; the process dies now
    del shop.faults.gates_after["charge"]
    shop.faults.failing["find_charge"] = FailureKind.UNREACHABLE

    [recovered] = await shop.restart()

    assert recovered.state is OrderState.CANCELLED
    assert recovered.cancel_reason == INTERRUPTED_DURING_PAYMENT
    assert recovered.step is SagaStep.COMPENSATING
    assert shop.inventory.available == {"sku-1": 10, "sku-2": 1}
    assert placing.cancelled()

    del shop.faults.failing["find_charge"]
    [settled] = await shop.saga.recover()

    assert settled.step is SagaStep.DONE
    assert shop.payments.states() == [PaymentState.REFUNDED]


async def test_same_key_returns_the_same_order_without_charging_again(shop: Shop) -> None:
    first = await shop.saga.place(order_for())
    again = await shop.saga.place(order_for())

    assert again.order_id == first.order_id and again.state is OrderState.CONFIRMED
    assert shop.payments.network_calls == 1


async def test_racing_requests_with_one_key_share_one_saga(shop: Shop) -> None:
    shop.faults.gates["charge"] = gate = asyncio.Event()
    command = order_for()
    racers = [asyncio.create_task(shop.saga.place(command)) for _ in range(5)]
    await shop.faults.reached("charge").wait()
    gate.set()

    orders = await asyncio.gather(*racers)

    assert {order.order_id for order in orders} == {orders[0].order_id}
    assert all(order.state is OrderState.CONFIRMED for order in orders)
    assert shop.payments.network_calls == 1


async def test_a_caller_giving_up_does_not_abandon_the_saga(shop: Shop) -> None:
    shop.faults.gates["charge"] = gate = asyncio.Event()
    command = order_for()
    impatient = asyncio.create_task(shop.saga.place(command))
    await shop.faults.reached("charge").wait()
    impatient.cancel()
    gate.set()

    order = await shop.saga.place(command)

    assert order.state is OrderState.CONFIRMED
    assert shop.payments.network_calls == 1


async def test_empty_cart_is_a_failed_precondition_and_creates_no_order(shop: Shop) -> None:
    shop.carts.carts.clear()

    with pytest.raises(FailedPrecondition):
        await shop.saga.place(order_for())

    assert shop.store.unsettled() == []
    assert shop.store.find_by_key(USER, "k-1") is None


async def test_unknown_user_is_not_found(shop: Shop) -> None:
    shop.users.users.clear()

    with pytest.raises(NotFound):
        await shop.saga.place(order_for())


async def test_unreachable_user_falls_back_on_the_local_contact_copy(shop: Shop) -> None:
    shop.faults.failing["contact"] = FailureKind.UNREACHABLE

    with pytest.raises(Unavailable):
        await shop.saga.place(order_for())

    del shop.faults.failing["contact"]
    await shop.saga.place(order_for())  # copies contact
    shop.faults.failing["contact"] = FailureKind.UNREACHABLE
    shop.carts.add(USER, "sku-1", 1, 1250)

    order = await shop.saga.place(order_for("k-2"))

    assert order.state is OrderState.CONFIRMED
