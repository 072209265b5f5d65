"""Small helpers the mesh tests share: calling through sidecars (reading Consul, Envoy
and supervisord's pids: harness/mesh.py; payment's fault knob, through the operator's
sidecar: harness/operator.py)."""

from __future__ import annotations

import uuid
from typing import Any

from meshmart.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from meshmart.common.v1 import common_pb2
from meshmart.payment.v1 import payment_pb2

CAPTURE_CARD = payment_pb2.Card(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123")


def charge_request(user_id: str = "mesh-test-user") -> payment_pb2.ChargeRequest:
    key = uuid.uuid4().hex
    return payment_pb2.ChargeRequest(
        idempotency_key=key,
        order_id=f"order-{key[:12]}",
        user_id=user_id,
        amount=common_pb2.Money(amount_minor=1250, currency="EUR"),
        card=CAPTURE_CARD,
    )


async def list_products(stub: catalog_pb2_grpc.CatalogServiceStub) -> Any:
    return await stub.ListProducts(catalog_pb2.ListProductsRequest(page_size=1), timeout=5)
