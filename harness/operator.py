"""Reaching a running mesh as the operator (tools/mesh/operator.py): a channel through the
operator's sidecar to a service or one instance of it, and payment's fault knob
(PaymentAdminService), per instance, the one way the tests, bench and tools/chaos set it.

The knob is not on a port every process can dial: the call leaves the operator's local
listener for "payment-<n>" (the virtual service that resolves to that instance alone),
crosses both sidecars over mTLS, and payment's intentions let only the operator through.
"""

from __future__ import annotations

import grpc
from meshmart.payment.v1 import payment_pb2, payment_pb2_grpc

from harness.load import loopback_channel
from tools.mesh.operator import Operator
from tools.mesh.plan import MeshPlan
from tools.mesh.topology import Instance

# Every call below has this deadline (seconds): a knob that does not answer is an error.
TIMEOUT = 5.0


def operator_channel(plan: MeshPlan, name: str) -> grpc.aio.Channel:
    """A plaintext channel to the operator's listener for service or instance ``name``
    ("catalog", "payment-1"); the operator's sidecar does the mTLS."""
    return loopback_channel(Operator(plan).target(name))


def payment_instances(plan: MeshPlan) -> list[Instance]:
    return [i for i in plan.instances() if i.service == "payment"]


async def set_fault(
    plan: MeshPlan, inst: Instance, unavailable_ratio: float = 0.0, delay_ms: int = 0
) -> None:
    """PaymentAdminService.SetFault on payment instance ``inst`` only."""
    async with operator_channel(plan, inst.instance_id) as channel:
        await payment_pb2_grpc.PaymentAdminServiceStub(channel).SetFault(
            payment_pb2.SetFaultRequest(unavailable_ratio=unavailable_ratio, delay_ms=delay_ms),
            timeout=TIMEOUT,
        )


async def get_fault(plan: MeshPlan, inst: Instance) -> tuple[float, int]:
    """(unavailable_ratio, delay_ms) as payment instance ``inst`` has it."""
    async with operator_channel(plan, inst.instance_id) as channel:
        reply = await payment_pb2_grpc.PaymentAdminServiceStub(channel).GetFault(
            payment_pb2.GetFaultRequest(), timeout=TIMEOUT)
    return reply.fault.unavailable_ratio, reply.fault.delay_ms


async def set_payment_fault(
    plan: MeshPlan, unavailable_ratio: float = 0.0, delay_ms: int = 0
) -> None:
    """The same fault on every payment instance."""
    for inst in payment_instances(plan):
        await set_fault(plan, inst, unavailable_ratio, delay_ms)


async def payment_faults(plan: MeshPlan) -> dict[str, tuple[float, int]]:
    """instance id -> (unavailable_ratio, delay_ms) of every payment instance."""
    return {inst.instance_id: await get_fault(plan, inst) for inst in payment_instances(plan)}
