"""Refund rules and ListPayments paging, over real gRPC."""

from __future__ import annotations

import grpc
import pytest
from meshmart.payment.v1 import payment_pb2

from tests.unit.payment.harness import DECLINE_CARD, PaymentHarness, charge_request

REFUNDED = payment_pb2.Payment.STATUS_REFUNDED


async def _captured(payment: PaymentHarness, key: str = "order-1:charge") -> payment_pb2.Payment:
    response: payment_pb2.ChargeResponse = await payment.stub.Charge(charge_request(key), timeout=5)
    assert response.payment.status == payment_pb2.Payment.STATUS_CAPTURED
    return response.payment


def _refund(payment_id: str, key: str = "order-1:refund") -> payment_pb2.RefundRequest:
    return payment_pb2.RefundRequest(
        payment_id=payment_id, idempotency_key=key, reason="order cancelled: out of stock"
    )


async def test_a_captured_payment_is_refunded_once_per_key(payment: PaymentHarness) -> None:
    captured = await _captured(payment)

    first = await payment.stub.Refund(_refund(captured.payment_id), timeout=5)
    again = await payment.stub.Refund(_refund(captured.payment_id), timeout=5)

    assert first.payment.status == REFUNDED
    assert first.payment.refund_reason == "order cancelled: out of stock"
    assert first.payment.payment_id == captured.payment_id
    assert again.payment == first.payment
    refunds = payment.db.read().execute("SELECT count(*) FROM refunds").fetchone()[0]
    assert refunds == 1


async def test_a_refunded_payment_cannot_be_refunded_under_a_new_key(
    payment: PaymentHarness,
) -> None:
    captured = await _captured(payment)
    await payment.stub.Refund(_refund(captured.payment_id), timeout=5)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Refund(_refund(captured.payment_id, key="another-key"), timeout=5)

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "only CAPTURED" in (caught.value.details() or "")


async def test_a_declined_payment_cannot_be_refunded(payment: PaymentHarness) -> None:
    declined = await payment.stub.Charge(charge_request(number=DECLINE_CARD), timeout=5)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Refund(_refund(declined.payment.payment_id), timeout=5)

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "DECLINED" in (caught.value.details() or "")


async def test_refunding_an_unknown_payment_is_not_found(payment: PaymentHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Refund(_refund("pay-missing"), timeout=5)

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_refund_key_cannot_be_reused_for_another_payment(
    payment: PaymentHarness,
) -> None:
    one = await _captured(payment, "order-1:charge")
    two = await _captured(payment, "order-2:charge")
    await payment.stub.Refund(_refund(one.payment_id, key="shared"), timeout=5)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Refund(_refund(two.payment_id, key="shared"), timeout=5)

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = await payment.stub.ListPayments(
        payment_pb2.ListPaymentsRequest(user_id="user-1"), timeout=5
    )
    assert {p.payment_id: p.status for p in listed.payments}[two.payment_id] == (
        payment_pb2.Payment.STATUS_CAPTURED
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (payment_pb2.RefundRequest(payment_id="", idempotency_key="k"), "payment_id"),
        (payment_pb2.RefundRequest(payment_id="pay-1", idempotency_key=""), "idempotency_key"),
        (
            payment_pb2.RefundRequest(payment_id="pay-1", idempotency_key="k", reason="x" * 501),
            "reason",
        ),
    ],
)
async def test_malformed_refunds_are_invalid_argument(
    payment: PaymentHarness, request_: payment_pb2.RefundRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Refund(request_, timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}:")


async def test_list_payments_pages_through_one_users_payments_newest_first(
    payment: PaymentHarness,
) -> None:
    charged = [
        (await payment.stub.Charge(charge_request(f"k{i}", order_id=f"o{i}"), timeout=5)).payment
        for i in range(5)
    ]
    await payment.stub.Charge(charge_request("other", user_id="user-2"), timeout=5)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await payment.stub.ListPayments(
            payment_pb2.ListPaymentsRequest(user_id="user-1", page_size=2, page_token=token),
            timeout=5,
        )
        pages += 1
        assert len(page.payments) <= 2
        seen += [p.payment_id for p in page.payments]
        token = page.next_page_token
        if not token:
            break

    assert pages == 3
    assert seen == [p.payment_id for p in reversed(charged)]


async def test_list_payments_refuses_another_users_caller(payment: PaymentHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.ListPayments(
            payment_pb2.ListPaymentsRequest(user_id="user-1"),
            metadata=[("x-meshmart-user-id", "user-2")],
            timeout=5,
        )

    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (payment_pb2.ListPaymentsRequest(user_id="user-1", page_size=101), "page_size"),
        (payment_pb2.ListPaymentsRequest(user_id="user-1", page_token="%%%"), "page_token"),
        (payment_pb2.ListPaymentsRequest(user_id=""), "user_id"),
    ],
)
async def test_bad_list_requests_are_invalid_argument(
    payment: PaymentHarness, request_: payment_pb2.ListPaymentsRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.ListPayments(request_, timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}:")
