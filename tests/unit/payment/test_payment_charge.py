"""Charge over real gRPC: the test-card table, validation, and idempotency by key."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from meshmart.payment.v1 import payment_pb2

from tests.unit.payment.harness import (
    CAPTURE_CARD,
    DECLINE_CARD,
    INSUFFICIENT_FUNDS_CARD,
    PaymentHarness,
    card,
    charge_request,
)

CAPTURED = payment_pb2.Payment.STATUS_CAPTURED
DECLINED = payment_pb2.Payment.STATUS_DECLINED


@pytest.mark.parametrize(
    ("number", "status", "reason"),
    [
        (CAPTURE_CARD, CAPTURED, ""),
        (DECLINE_CARD, DECLINED, "card_declined"),
        (INSUFFICIENT_FUNDS_CARD, DECLINED, "insufficient_funds"),
        # Any other Luhn-valid number is captured (a Mastercard test number here).
        ("5555555555554444", CAPTURED, ""),
    ],
)
async def test_test_card_table_decides_the_outcome(
    payment: PaymentHarness, number: str, status: int, reason: str
) -> None:
    response = await payment.stub.Charge(charge_request(number=number), timeout=5)

    charged = response.payment
    assert charged.status == status
    assert charged.decline_reason == reason
    assert charged.payment_id.startswith("pay-")
    assert (charged.order_id, charged.user_id) == ("order-1", "user-1")
    assert (charged.amount.amount_minor, charged.amount.currency) == (2590, "EUR")
    assert charged.card_last4 == number[-4:]
    assert charged.created_at.seconds > 0


async def test_a_decline_is_stored_and_replayed_not_an_rpc_error(payment: PaymentHarness) -> None:
    first = await payment.stub.Charge(charge_request(number=DECLINE_CARD), timeout=5)
    again = await payment.stub.Charge(charge_request(number=DECLINE_CARD), timeout=5)

    assert first.payment.status == DECLINED
    assert again.payment == first.payment
    assert len(payment.payment_rows()) == 1


async def test_the_full_card_number_is_never_stored(payment: PaymentHarness) -> None:
    await payment.stub.Charge(charge_request(), timeout=5)

    raw = payment.stored_bytes()
    assert CAPTURE_CARD.encode() not in raw
    assert b"4242" in raw


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (charge_request(number="4242424242424241"), "card.number"),  # Luhn fails
        (charge_request(number="4242 4242 4242 4242"), "card.number"),
        (charge_request(key=""), "idempotency_key"),
        (charge_request(key="k" * 201), "idempotency_key"),
        (charge_request(order_id=""), "order_id"),
        (charge_request(user_id=" "), "user_id"),
        (charge_request(amount_minor=0), "amount.amount_minor"),
        (charge_request(amount_minor=100_000_001), "amount.amount_minor"),
        (charge_request(currency="eur"), "amount.currency"),
    ],
)
async def test_malformed_charges_are_invalid_argument_naming_the_field(
    payment: PaymentHarness, request_: payment_pb2.ChargeRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Charge(request_, timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}:")
    assert payment.payment_rows() == []


@pytest.mark.parametrize(
    ("exp_month", "exp_year", "field"),
    [
        (12, 2025, "card.exp_year"),  # last year (tests run on 2026-06-15)
        (5, 2026, "card.exp_month"),  # earlier this year
        (13, 2030, "card.exp_month"),
    ],
)
async def test_an_expired_or_impossible_expiry_is_invalid_argument(
    payment: PaymentHarness, exp_month: int, exp_year: int, field: str
) -> None:
    request = charge_request()
    request.card.CopyFrom(card(exp_month=exp_month, exp_year=exp_year))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Charge(request, timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}:")


async def test_a_card_expiring_this_month_is_still_charged(payment: PaymentHarness) -> None:
    request = charge_request()
    request.card.CopyFrom(card(exp_month=6, exp_year=2026))

    response = await payment.stub.Charge(request, timeout=5)

    assert response.payment.status == CAPTURED


async def test_repeating_a_key_returns_the_first_payment_and_charges_once(
    payment: PaymentHarness,
) -> None:
    first = await payment.stub.Charge(charge_request(), timeout=5)
    second = await payment.stub.Charge(charge_request(), timeout=5)

    assert second.payment == first.payment
    assert len(payment.payment_rows()) == 1


async def test_twenty_concurrent_charges_with_one_key_make_one_payment(
    payment: PaymentHarness,
) -> None:
    responses = await asyncio.gather(
        *(payment.stub.Charge(charge_request("race-key"), timeout=10) for _ in range(20))
    )

    assert {r.payment.payment_id for r in responses} == {responses[0].payment.payment_id}
    assert all(r.payment == responses[0].payment for r in responses)
    rows = payment.payment_rows()
    assert len(rows) == 1
    assert rows[0]["idempotency_key"] == "race-key"


@pytest.mark.parametrize(
    "changed",
    [
        charge_request(order_id="order-2"),
        charge_request(user_id="user-2"),
        charge_request(amount_minor=9999),
        charge_request(currency="USD"),
    ],
)
async def test_a_key_reused_for_a_different_charge_is_failed_precondition(
    payment: PaymentHarness, changed: payment_pb2.ChargeRequest
) -> None:
    await payment.stub.Charge(charge_request(), timeout=5)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Charge(changed, timeout=5)

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "idempotency_key" in (caught.value.details() or "")
    assert len(payment.payment_rows()) == 1


async def test_a_user_may_not_charge_for_another_user(payment: PaymentHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Charge(
            charge_request(user_id="user-1"),
            metadata=[("x-meshmart-user-id", "user-2")],
            timeout=5,
        )

    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert payment.payment_rows() == []
