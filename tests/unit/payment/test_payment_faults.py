"""The fault knob: injected UNAVAILABLE at a given ratio, before any state change."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from meshmart.payment.v1 import payment_pb2

from services.kit.config import ConfigError
from services.kit.errors import PermissionDenied
from services.payment.faults import Fault, FaultInjector
from services.payment.servicer import PaymentAdminServicer, is_loopback_peer
from services.payment.settings import load_settings
from tests.unit.payment.harness import PaymentHarness, charge_request


async def _set_fault(payment: PaymentHarness, ratio: float, delay_ms: int = 0) -> None:
    await payment.admin.SetFault(
        payment_pb2.SetFaultRequest(unavailable_ratio=ratio, delay_ms=delay_ms), timeout=5
    )


async def test_set_fault_from_loopback_changes_and_reports_the_knob(
    payment: PaymentHarness,
) -> None:
    response = await payment.admin.SetFault(
        payment_pb2.SetFaultRequest(unavailable_ratio=0.3, delay_ms=25), timeout=5
    )
    current = await payment.admin.GetFault(payment_pb2.GetFaultRequest(), timeout=5)

    # float on the wire: 0.3 comes back as the nearest float32.
    assert response.fault.unavailable_ratio == pytest.approx(0.3)
    assert response.fault.delay_ms == 25
    assert current.fault == response.fault
    assert payment.faults.fault == Fault(unavailable_ratio=0.3, delay_ms=25)


async def test_a_ratio_fails_about_that_fraction_of_charges_with_unavailable(
    payment: PaymentHarness,
) -> None:
    await _set_fault(payment, 0.5)
    calls = 200
    failed = 0
    for i in range(calls):
        try:
            await payment.stub.Charge(charge_request(f"k{i}", order_id=f"o{i}"), timeout=5)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "injected fault" in (error.details() or "")
            failed += 1

    # Binomial(200, 0.5): mean 100, standard deviation ~7; 65..135 is five deviations,
    # so a correct knob fails this bound about once in a few million runs.
    assert 65 <= failed <= 135
    # Every injected failure happened before the database was touched.
    assert len(payment.payment_rows()) == calls - failed


async def test_an_injected_failure_leaves_no_state_so_a_retry_charges_once(
    payment: PaymentHarness,
) -> None:
    await _set_fault(payment, 1.0)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await payment.stub.Charge(charge_request(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert payment.payment_rows() == []

    await _set_fault(payment, 0.0)
    first = await payment.stub.Charge(charge_request(), timeout=5)
    retried = await payment.stub.Charge(charge_request(), timeout=5)

    assert retried.payment == first.payment
    assert len(payment.payment_rows()) == 1


async def test_refund_is_faulty_too_and_list_payments_only_slow(payment: PaymentHarness) -> None:
    charged = (await payment.stub.Charge(charge_request(), timeout=5)).payment
    await _set_fault(payment, 1.0, delay_ms=50)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payment.stub.Refund(
            payment_pb2.RefundRequest(payment_id=charged.payment_id, idempotency_key="r"),
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    started = time.perf_counter()
    listed = await payment.stub.ListPayments(
        payment_pb2.ListPaymentsRequest(user_id="user-1"), timeout=5
    )
    assert time.perf_counter() - started >= 0.05
    assert [p.status for p in listed.payments] == [payment_pb2.Payment.STATUS_CAPTURED]


@pytest.mark.parametrize(
    ("ratio", "delay_ms", "field"),
    [(1.5, 0, "unavailable_ratio"), (-0.1, 0, "unavailable_ratio"), (0.1, 60_001, "delay_ms")],
)
async def test_set_fault_rejects_settings_out_of_range(
    payment: PaymentHarness, ratio: float, delay_ms: int, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _set_fault(payment, ratio, delay_ms)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}:")


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("ipv4:127.0.0.1:51234", True),
        ("ipv4:127.0.0.53:51234", True),
        ("ipv6:[::1]:51234", True),
        ("unix:/tmp/payment.sock", True),
        ("ipv4:10.1.2.3:51234", False),
        ("ipv6:[2001:db8::1]:51234", False),
        ("ipv4:not-an-ip:1", False),
        ("", False),
    ],
)
def test_loopback_peers_are_recognised(peer: str, loopback: bool) -> None:
    assert is_loopback_peer(peer) is loopback


class _RemotePeerContext:
    """Only what SetFault reads: a peer on another host (tests cannot open one)."""

    def peer(self) -> str:
        return "ipv4:192.0.2.10:40000"


async def test_set_fault_from_a_remote_peer_is_permission_denied() -> None:
    faults = FaultInjector(Fault())
    admin = PaymentAdminServicer(faults)
    remote: Any = _RemotePeerContext()

    with pytest.raises(PermissionDenied):
        await admin.SetFault(payment_pb2.SetFaultRequest(unavailable_ratio=1.0), remote)
    assert faults.fault == Fault()


def test_fault_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "MESHMART_PAYMENT_FAULT_UNAVAILABLE_RATIO": "0.3",
            "MESHMART_PAYMENT_FAULT_DELAY_MS": "40",
        }
    )

    assert settings.initial_fault == Fault(unavailable_ratio=0.3, delay_ms=40)
    assert load_settings({}).initial_fault == Fault()


def test_a_bad_fault_setting_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="MESHMART_PAYMENT_FAULT_UNAVAILABLE_RATIO"):
        load_settings({"MESHMART_PAYMENT_FAULT_UNAVAILABLE_RATIO": "2"})
