"""PlaceOrderSaga: turn a cart into an order that ends CONFIRMED or CANCELLED, never stuck.

Forward: reserve stock -> charge the card -> commit the stock -> CONFIRMED -> clear the
cart. A failure compensates in reverse (release the stock; refund a captured payment) and
leaves the order CANCELLED with a reason the customer can read.

Durability: the step reached is stored after every step (model.SagaStep), and the
decision to cancel is stored *before* compensating, so a process that dies anywhere is
finished by the next start (``recover``): it resumes what it can and compensates what it
cannot. The card is deliberately never stored, so an order interrupted before its charge
is cancelled rather than charged later.

Every remote operation is idempotent per order (Reserve/Release/Commit by order id,
Charge by "<order_id>:charge", Refund by "<order_id>:refund"), so repeating a step after
a lost answer never reserves or charges twice.

Each saga runs as its own task, detached from the PlaceOrder RPC that started it: a caller
who gives up (deadline, disconnect) does not abandon a half-done order; a repeat with the
same idempotency key waits for the same task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from services.kit import context as rpc_context
from services.kit.clock import utc_now
from services.kit.errors import FailedPrecondition, NotFound, Unavailable
from services.kit.logging import get_logger

from . import metrics
from .model import (
    Card,
    Contact,
    Order,
    OrderLine,
    OrderState,
    PaymentState,
    PlaceOrderCommand,
    SagaStep,
)
from .ports import (
    CartLine,
    Carts,
    ChargeOutcome,
    ChargeRequest,
    FailureKind,
    Inventory,
    Payments,
    StockLine,
    UpstreamError,
    Users,
)
from .settings import OrderSettings
from .store import OrderStore, StaleOrder

log = get_logger("meshmart.order.saga")

# Cancel reasons for orders a restart interrupted (the card is gone, so no new charge).
INTERRUPTED_BEFORE_PAYMENT = "order interrupted before payment; nothing was charged"
INTERRUPTED_DURING_PAYMENT = "order interrupted during payment; any charge will be refunded"
MAX_REFUND_REASON = 500  # payment.Refund accepts at most 500 characters


def new_order_id() -> str:
    return f"ord-{uuid.uuid4().hex[:16]}"


def charge_key(order_id: str) -> str:
    """payment.Charge's idempotency key: one charge per order, however often it is sent."""
    return f"{order_id}:charge"


def refund_key(order_id: str) -> str:
    return f"{order_id}:refund"


class PlaceOrderSaga:
    def __init__(
        self,
        store: OrderStore,
        *,
        users: Users,
        carts: Carts,
        inventory: Inventory,
        payments: Payments,
        settings: OrderSettings,
        clock: Callable[[], dt.datetime] = utc_now,
        order_ids: Callable[[], str] = new_order_id,
    ) -> None:
        self._store = store
        self._users = users
        self._carts = carts
        self._inventory = inventory
        self._payments = payments
        self._settings = settings
        self._clock = clock
        self._order_ids = order_ids
        # Sagas running in this process, by order id: the one place that knows an order is
        # being driven, so a repeat request or a recovery sweep never drives it twice.
        self._running: dict[str, asyncio.Task[Order]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- PlaceOrder -------------------------------------------------------------------

    async def place(self, command: PlaceOrderCommand) -> Order:
        """Place the user's cart as an order and return it in its final state.

        A repeat of (user_id, idempotency_key) returns the first order, waiting for its
        saga if it is still running. Raises NotFound (unknown user), FailedPrecondition
        (empty cart) or Unavailable (user or cart unreachable); in those cases no order
        exists and a retry with the same key is safe.
        """
        existing = await self._store.db.run(
            self._store.find_by_key, command.user_id, command.idempotency_key
        )
        if existing is not None:
            return await self._outcome_of(existing)

        contact, lines = await self._read_user_and_cart(command.user_id)
        now = self._clock()
        order = Order(
            order_id=self._order_ids(),
            user_id=command.user_id,
            idempotency_key=command.idempotency_key,
            state=OrderState.PENDING,
            step=SagaStep.RESERVING,
            lines=tuple(
                OrderLine(
                    product_id=line.product_id,
                    name=line.name,
                    quantity=line.quantity,
                    unit_price_minor=line.unit_price.amount_minor,
                )
                for line in lines
            ),
            currency=lines[0].unit_price.currency,
            shipping_address=command.shipping_address,
            created_at=now,
            updated_at=now,
        )
        # Nothing awaited between the insert's answer and registering its task: a racing
        # repeat that loses the insert always finds the task to wait for. (The database's
        # one thread answers in the order it ran the calls, and the loop wakes the waiting
        # coroutines in that order, so this one resumes before the repeat's look-up does.)
        # The contact copy is refreshed in the order's own transaction (one commit less).
        stored, created = await self._store.db.run(self._store.create, order, contact, now)
        if not created:
            return await self._outcome_of(stored)
        metrics.ORDERS_PLACED.inc()
        log.info(
            "order.created",
            order_id=order.order_id,
            user_id=order.user_id,
            total_minor=order.total.amount_minor,
            lines=len(order.lines),
        )
        return await asyncio.shield(self._launch(order, command.card))

    async def _outcome_of(self, order: Order) -> Order:
        task = self._running.get(order.order_id)
        if task is None and not order.is_settled:
            # Left unfinished by an earlier run (recovery has not reached it yet, or its
            # compensation is waiting for an upstream): finish it now, without a card.
            task = self._launch(order, card=None)
        if task is None:
            return order
        return await asyncio.shield(task)

    async def _read_user_and_cart(self, user_id: str) -> tuple[Contact | None, list[CartLine]]:
        """The user's fresh contact data (None: user is unreachable, and the local copy
        will do) and the cart's lines."""
        # Both reads are independent; doing them together costs one round trip.
        contact, lines = await asyncio.gather(
            self._users.contact(user_id),
            self._carts.lines(user_id),
            return_exceptions=True,
        )
        fresh = await self._check_user(user_id, contact)
        if isinstance(lines, BaseException):
            if isinstance(lines, UpstreamError):
                # The upstream's detail (addresses, internals) goes to the log only.
                log.warning("order.cart_unreachable", user_id=user_id, error=str(lines))
                raise Unavailable("cart service unavailable") from lines
            raise lines
        if not lines:
            raise FailedPrecondition("the cart is empty")
        currencies = {line.unit_price.currency for line in lines}
        if len(currencies) != 1:
            raise FailedPrecondition(f"the cart mixes currencies: {', '.join(sorted(currencies))}")
        if sum(line.unit_price.amount_minor * line.quantity for line in lines) <= 0:
            raise FailedPrecondition("the cart total is zero")
        return fresh, lines

    async def _check_user(self, user_id: str, contact: Contact | BaseException) -> Contact | None:
        """The fresh contact (stored with the order), or None when user is unreachable and
        the local copy will do."""
        if isinstance(contact, Contact):
            return contact
        if not isinstance(contact, UpstreamError):
            raise contact
        if contact.kind is FailureKind.NOT_FOUND:
            raise NotFound(f"user {user_id} not found")
        log.warning("order.user_unreachable", user_id=user_id, error=str(contact))
        if await self._store.db.run(self._store.contact, user_id) is None:
            raise Unavailable("user service unavailable") from contact
        # Seen before: the local copy is enough to place the order.
        return None

    # -- running sagas ----------------------------------------------------------------

    def _launch(self, order: Order, card: Card | None) -> asyncio.Task[Order]:
        """The task driving ``order`` (started now unless one is running)."""
        running = self._running.get(order.order_id)
        if running is not None:
            return running
        task = asyncio.create_task(
            self._drive_detached(order, card),
            name=f"place-order-saga:{order.order_id}",
        )
        self._running[order.order_id] = task

        def forget(done: asyncio.Task[Order]) -> None:
            if self._running.get(order.order_id) is done:
                del self._running[order.order_id]

        task.add_done_callback(forget)
        return task

    async def _drive_detached(self, order: Order, card: Card | None) -> Order:
        # The task runs in a copy of the starting request's context. Keep its request id
        # and trace (logs, propagation); drop its deadline, so the saga runs on its own
        # per-call deadlines after the caller has gone, and its forwarded user, so the
        # saga calls upstreams as order itself.
        with rpc_context.request_scope(
            request_id=rpc_context.current_request_id(),
            traceparent=rpc_context.current_traceparent(),
            user_id=None,
            timeout=None,
        ):
            return await self._drive(order, card)

    async def _drive(self, order: Order, card: Card | None) -> Order:
        """Run ``order`` from its stored step to the end.

        ``card`` is None when resuming an order from an earlier run; then no new charge
        can be made. Cancellation (shutdown) is not caught: the order stays at its stored
        step and the next start finishes it.
        """
        try:
            while True:
                match order.step:
                    case SagaStep.RESERVING:
                        order = await self._reserve(order, card)
                    case SagaStep.CHARGING:
                        order = await self._charge(order, card)
                    case SagaStep.COMMITTING:
                        order = await self._commit(order)
                    case SagaStep.COMPENSATING:
                        return await self._compensate(order)
                    case SagaStep.DONE:
                        return order
        except StaleOrder:
            # Someone else moved this order on (another driver after a restart race);
            # theirs is the truth.
            fresh = await self._store.db.run(self._store.get, order.order_id)
            log.warning("order.saga_superseded", order_id=order.order_id)
            return fresh if fresh is not None else order

    # -- forward steps ----------------------------------------------------------------

    async def _reserve(self, order: Order, card: Card | None) -> Order:
        if card is None:
            return await self._cancel(order, INTERRUPTED_BEFORE_PAYMENT)
        try:
            await self._inventory.reserve(
                order.order_id,
                [StockLine(line.product_id, line.quantity) for line in order.lines],
                ttl_seconds=self._settings.reservation_ttl_seconds,
            )
        except UpstreamError as error:
            return await self._cancel(order, _reserve_failure_reason(error))
        # From here on a charge may be in flight until its answer is stored.
        return await self._save(order, step=SagaStep.CHARGING, payment_state=PaymentState.UNKNOWN)

    async def _charge(self, order: Order, card: Card | None) -> Order:
        if card is None:
            return await self._charge_outcome_after_restart(order)
        request = ChargeRequest(
            idempotency_key=charge_key(order.order_id),
            order_id=order.order_id,
            user_id=order.user_id,
            amount=order.total,
            card=card,
        )
        try:
            outcome = await self._payments.charge(request)
        except UpstreamError as error:
            if error.kind is FailureKind.UNREACHABLE:
                # The charge may have gone through; compensation asks payment and refunds.
                return await self._cancel(
                    order, "payment service unavailable", payment_state=PaymentState.UNKNOWN
                )
            return await self._cancel(
                order, f"payment rejected: {error.detail}", payment_state=PaymentState.NONE
            )
        return await self._after_charge(order, outcome)

    async def _charge_outcome_after_restart(self, order: Order) -> Order:
        """A charge may have been sent before the restart: ask payment what became of it."""
        try:
            outcome = await self._payments.find_charge(order.user_id, order.order_id)
        except UpstreamError:
            return await self._cancel(
                order, INTERRUPTED_DURING_PAYMENT, payment_state=PaymentState.UNKNOWN
            )
        if outcome is None:
            return await self._cancel(
                order, INTERRUPTED_BEFORE_PAYMENT, payment_state=PaymentState.NONE
            )
        # A captured charge is carried forward: the customer paid for stock still held.
        return await self._after_charge(order, outcome)

    async def _after_charge(self, order: Order, outcome: ChargeOutcome) -> Order:
        if outcome.state is PaymentState.CAPTURED:
            return await self._save(
                order,
                step=SagaStep.COMMITTING,
                payment_id=outcome.payment_id,
                payment_state=PaymentState.CAPTURED,
            )
        if outcome.state is PaymentState.DECLINED:
            reason = outcome.decline_reason or "card_declined"
            return await self._cancel(
                order,
                f"payment declined: {reason}",
                payment_id=outcome.payment_id,
                payment_state=PaymentState.DECLINED,
            )
        return await self._cancel(
            order,
            "payment was refunded",
            payment_id=outcome.payment_id,
            payment_state=outcome.state,
        )

    async def _commit(self, order: Order) -> Order:
        try:
            await self._inventory.commit(order.order_id)
        except UpstreamError as error:
            if error.kind is FailureKind.UNREACHABLE:
                return await self._commit_outcome_unknown(order)
            if error.kind in (FailureKind.REFUSED, FailureKind.NOT_FOUND):
                # Expired (the order took longer than the reservation TTL) or released.
                return await self._cancel(order, "stock no longer reserved")
            return await self._cancel(order, f"inventory rejected the order: {error.detail}")
        return await self._confirm(order)

    async def _commit_outcome_unknown(self, order: Order) -> Order:
        # The commit may have landed before the answer was lost. Release tells which: it
        # is refused only when the stock is already sold, and otherwise it is the first
        # compensation step anyway.
        try:
            await self._inventory.release(order.order_id)
        except UpstreamError as error:
            if error.kind is FailureKind.REFUSED:
                return await self._confirm(order)
        return await self._cancel(order, "inventory service unavailable")

    async def _confirm(self, order: Order) -> Order:
        confirmed = await self._save(order, state=OrderState.CONFIRMED, step=SagaStep.DONE)
        metrics.ORDERS_CONFIRMED.inc()
        log.info("order.confirmed", order_id=order.order_id, payment_id=order.payment_id)
        try:
            await self._carts.clear(order.user_id)
        except UpstreamError as error:
            # The order stands; a cart left full is a nuisance, not an inconsistency.
            log.warning("order.cart_not_cleared", order_id=order.order_id, error=str(error))
        return confirmed

    # -- compensation -----------------------------------------------------------------

    async def _cancel(self, order: Order, reason: str, **changes: Any) -> Order:
        """Record the decision to cancel (before undoing anything, so a restart in the
        middle of compensation keeps compensating instead of going forward)."""
        log.warning("order.cancelling", order_id=order.order_id, reason=reason)
        cancelled = await self._save(
            order,
            state=OrderState.CANCELLED,
            step=SagaStep.COMPENSATING,
            cancel_reason=reason,
            **changes,
        )
        metrics.ORDERS_CANCELLED.inc()
        return cancelled

    async def _compensate(self, order: Order) -> Order:
        """Release the stock and refund any capture; DONE once both are certain.

        What cannot be done now (an upstream is down) leaves the order at COMPENSATING
        (still CANCELLED for the customer) for the next sweep or start to retry.
        """
        stock_released = await self._release_stock(order)
        payment_id, payment_state, payment_settled = await self._undo_payment(order)
        settled = stock_released and payment_settled
        metrics.SAGA_COMPENSATIONS.labels("completed" if settled else "deferred").inc()
        if not settled and payment_id == order.payment_id and payment_state is order.payment_state:
            return order
        order = await self._save(
            order,
            step=SagaStep.DONE if settled else SagaStep.COMPENSATING,
            payment_id=payment_id,
            payment_state=payment_state,
        )
        if settled:
            log.info("order.compensated", order_id=order.order_id, reason=order.cancel_reason)
        return order

    async def _release_stock(self, order: Order) -> bool:
        try:
            await self._inventory.release(order.order_id)
        except UpstreamError as error:
            if error.kind is FailureKind.UNREACHABLE:
                # Retried later; the reservation's TTL gives the stock back regardless.
                log.warning("order.release_failed", order_id=order.order_id, error=str(error))
                return False
            if error.kind is FailureKind.NOT_FOUND:
                return True  # nothing was ever reserved
            # REFUSED means the stock was already sold: a sale order cannot undo itself.
            log.error("order.release_refused", order_id=order.order_id, error=str(error))
        return True

    async def _undo_payment(self, order: Order) -> tuple[str, PaymentState, bool]:
        """(payment_id, payment_state, settled) after refunding whatever was captured."""
        payment_id, state = order.payment_id, order.payment_state
        if state is PaymentState.UNKNOWN:
            try:
                found = await self._payments.find_charge(order.user_id, order.order_id)
            except UpstreamError as error:
                log.warning(
                    "order.payment_lookup_failed", order_id=order.order_id, error=str(error)
                )
                return payment_id, state, False
            if found is None:
                return "", PaymentState.NONE, True
            payment_id, state = found.payment_id, found.state
        if state is not PaymentState.CAPTURED:
            return payment_id, state, True
        reason = f"order cancelled: {order.cancel_reason}"[:MAX_REFUND_REASON]
        try:
            await self._payments.refund(payment_id, refund_key(order.order_id), reason)
        except UpstreamError as error:
            if error.kind is FailureKind.UNREACHABLE:
                log.warning("order.refund_failed", order_id=order.order_id, error=str(error))
                return payment_id, state, False
            log.error("order.refund_refused", order_id=order.order_id, error=str(error))
            return payment_id, state, True
        log.info("order.refunded", order_id=order.order_id, payment_id=payment_id)
        metrics.SAGA_REFUNDS.inc()
        return payment_id, PaymentState.REFUNDED, True

    async def _save(self, order: Order, **changes: Any) -> Order:
        updated = dataclasses.replace(order, **changes)
        if updated.state is not order.state:
            # updated_at is "when the state last changed", not every bookkeeping write.
            updated = dataclasses.replace(updated, updated_at=self._clock())
        return await self._store.db.run(
            self._store.save_progress, updated, expected_step=order.step
        )

    # -- recovery ---------------------------------------------------------------------

    async def recover(self) -> list[Order]:
        """Finish every order an earlier run (or a failed compensation) left unsettled.

        Returns the orders as they ended. Orders already being driven in this process are
        left to their task.
        """
        unsettled = await self._store.db.run(self._store.unsettled)
        tasks = [
            self._launch(order, card=None)
            for order in unsettled
            if order.order_id not in self._running
        ]
        if not tasks:
            return []
        log.info("order.recovery_started", orders=len(tasks))
        results = await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)
        recovered: list[Order] = []
        for result in results:
            if isinstance(result, Order):
                recovered.append(result)
                log.info(
                    "order.recovered",
                    order_id=result.order_id,
                    state=result.state.value,
                    step=result.step.value,
                    reason=result.cancel_reason,
                )
            elif isinstance(result, Exception):
                log.error("order.recovery_failed", exc_info=result)
            else:
                raise result  # CancelledError and friends: we are shutting down
        return recovered

    async def start(self) -> None:
        """Startup: recover what the last run left, then keep sweeping in the background."""
        await self.recover()
        if self._settings.sweep_interval_seconds > 0 and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="order-saga-sweeper")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval_seconds)
            try:
                await self.recover()
            except Exception:
                log.exception("order.sweep_failed")

    async def close(self) -> None:
        """Stop the sweeper and any saga still running.

        Called after the server has drained. An interrupted saga keeps its stored step
        and is finished by the next start, exactly as after a crash.
        """
        sagas: list[asyncio.Task[Any]] = list(self._running.values())
        tasks = sagas if self._sweeper is None else [*sagas, self._sweeper]
        self._sweeper = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if sagas:
            log.info("order.sagas_interrupted", count=len(sagas))


def _reserve_failure_reason(error: UpstreamError) -> str:
    match error.kind:
        case FailureKind.REFUSED:
            return f"out of stock: {error.subject}" if error.subject else "out of stock"
        case FailureKind.NOT_FOUND:
            return f"product not sold: {error.subject}" if error.subject else "product not sold"
        case FailureKind.UNREACHABLE:
            return "inventory service unavailable"
        case _:
            return f"inventory rejected the order: {error.detail}"
