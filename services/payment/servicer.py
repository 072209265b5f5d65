"""gRPC face of payment: validate the request, call the processor, map the result."""

from __future__ import annotations

import ipaddress
from typing import TypeAlias

import grpc
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc

from services.kit import validate
from services.kit.context import acting_user
from services.kit.errors import PermissionDenied
from services.kit.server import ServiceSpec

from .domain import PaymentProcessor
from .events import payment_to_proto
from .faults import Fault, FaultInjector
from .model import Card, ChargeCommand

# grpc ships no type hints, so this is Any to mypy; it names what the argument is.
Context: TypeAlias = grpc.aio.ServicerContext

MAX_AMOUNT_MINOR = 100_000_000


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, processor: PaymentProcessor, faults: FaultInjector) -> None:
        self._processor = processor
        self._faults = faults

    async def Charge(
        self, request: payment_pb2.ChargeRequest, context: Context
    ) -> payment_pb2.ChargeResponse:
        # Before the servicer's own checks and any storage: an injected failure must leave
        # no trace (the contract's rules ran in the interceptor; they write nothing).
        await self._faults.before_write("Charge")
        command = ChargeCommand(
            idempotency_key=request.idempotency_key,
            order_id=request.order_id.strip(),
            user_id=acting_user(context, request.user_id),
            # A bound of a charge, not of every Money: stays here.
            amount_minor=validate.in_range(
                request.amount.amount_minor, 1, MAX_AMOUNT_MINOR, "amount.amount_minor"
            ),
            currency=request.amount.currency,
        )
        card = Card(
            number=request.card.number,
            exp_month=request.card.exp_month,
            exp_year=request.card.exp_year,
            cvc=request.card.cvc,
        )
        payment = await self._processor.db.run(self._processor.charge, command, card)
        return payment_pb2.ChargeResponse(payment=payment_to_proto(payment))

    async def Refund(
        self, request: payment_pb2.RefundRequest, context: Context
    ) -> payment_pb2.RefundResponse:
        await self._faults.before_write("Refund")
        payment = await self._processor.db.run(
            self._processor.refund,
            request.payment_id.strip(),
            request.idempotency_key,
            request.reason.strip(),
        )
        return payment_pb2.RefundResponse(payment=payment_to_proto(payment))

    async def ListPayments(
        self, request: payment_pb2.ListPaymentsRequest, context: Context
    ) -> payment_pb2.ListPaymentsResponse:
        await self._faults.before_read()
        user_id = acting_user(context, request.user_id)
        page = await self._processor.db.run(
            self._processor.list_for_user,
            user_id,
            validate.page_size(request.page_size),
            request.page_token,
        )
        return payment_pb2.ListPaymentsResponse(
            payments=[payment_to_proto(p) for p in page.payments],
            next_page_token=page.next_page_token,
        )


class PaymentAdminServicer(payment_pb2_grpc.PaymentAdminServiceServicer):
    """Fault knob of this instance; only a process on the same host may turn it."""

    def __init__(self, faults: FaultInjector) -> None:
        self._faults = faults

    async def SetFault(
        self, request: payment_pb2.SetFaultRequest, context: Context
    ) -> payment_pb2.SetFaultResponse:
        _ensure_loopback(context)
        fault = self._faults.set(
            # float32 on the wire: 0.3 arrives as 0.30000001192..., round it back.
            Fault(unavailable_ratio=round(request.unavailable_ratio, 6), delay_ms=request.delay_ms)
        )
        return payment_pb2.SetFaultResponse(fault=fault_to_proto(fault))

    async def GetFault(
        self, request: payment_pb2.GetFaultRequest, context: Context
    ) -> payment_pb2.GetFaultResponse:
        _ensure_loopback(context)
        return payment_pb2.GetFaultResponse(fault=fault_to_proto(self._faults.fault))


def is_loopback_peer(peer: str) -> bool:
    """Whether a grpc peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000",
    "unix:/path") is this host."""
    kind, _, address = peer.partition(":")
    if kind == "unix":
        return True
    if kind == "ipv4":
        host = address.rsplit(":", 1)[0]
    elif kind == "ipv6":
        host = address.rsplit(":", 1)[0].strip("[]")
    else:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _ensure_loopback(context: Context) -> None:
    # Behind a sidecar every peer is loopback (Envoy connects from 127.0.0.1); the mesh's
    # intentions are what keep remote services away from this service there.
    peer = context.peer()
    if not is_loopback_peer(peer):
        raise PermissionDenied(f"PaymentAdminService is loopback-only; peer {peer} is not")


def fault_to_proto(fault: Fault) -> payment_pb2.Fault:
    return payment_pb2.Fault(unavailable_ratio=fault.unavailable_ratio, delay_ms=fault.delay_ms)


def service_specs(processor: PaymentProcessor, faults: FaultInjector) -> list[ServiceSpec]:
    """Both payment services, sharing one fault knob; what serve() and the tests run."""
    payments = PaymentServicer(processor, faults)
    admin = PaymentAdminServicer(faults)
    return [
        ServiceSpec(
            name="meshmart.payment.v1.PaymentService",
            add=lambda server: payment_pb2_grpc.add_PaymentServiceServicer_to_server(
                payments, server
            ),
        ),
        ServiceSpec(
            name="meshmart.payment.v1.PaymentAdminService",
            add=lambda server: payment_pb2_grpc.add_PaymentAdminServiceServicer_to_server(
                admin, server
            ),
        ),
    ]
