"""v1 and v2 side by side on one shop: the same requests must get the same answers, byte
for byte (products, source) or error for error (code, message, field violations). Any
difference is a failure, whichever implementation is right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from meshmart.recommendation.v1 import recommendation_pb2

from harness.recommendation import V1, V2
from harness.shop import DECLINE_CARD, running_shop
from tests.contract.implementations import running
from tests.contract.test_recommend_contract import buy, violations

TIMEOUT = 10.0


async def answer(rec: Any, user_id: str, limit: int, caller: str | None) -> tuple[Any, ...]:
    metadata = (("x-meshmart-user-id", caller),) if caller is not None else ()
    try:
        reply: recommendation_pb2.RecommendResponse = await rec.stub.Recommend(
            recommendation_pb2.RecommendRequest(user_id=user_id, limit=limit),
            timeout=TIMEOUT,
            metadata=metadata,
        )
    except grpc.aio.AioRpcError as error:
        return ("error", error.code(), error.details(), violations(error))
    return ("ok", reply.source, reply.SerializeToString(deterministic=True))


async def test_v1_and_v2_answer_every_request_alike(tmp_path: Path) -> None:
    async with running_shop(tmp_path) as shop:
        # A small history with ties, repeat buyers, a cancelled order and a user whose
        # every co-purchase they already own.
        ann = await buy(shop, "sku-1001", "sku-1010", "sku-1020")
        bob = await buy(shop, "sku-1001", "sku-1010")
        await buy(shop, "sku-1030", "sku-1031")
        cy = await buy(shop, "sku-1031")
        dee = await buy(shop, "sku-1040", card=DECLINE_CARD)
        await buy(shop, "sku-1001", "sku-1020", "sku-1030")
        newcomer = (await shop.register()).user_id
        users = [ann, bob, cy, dee, newcomer, "usr-unknown", f" {ann} ", "", "  "]
        cases: list[tuple[str, int, str | None]] = [
            (user, limit, None) for user in users for limit in (0, 1, 2, 3, 5, 10, 50, 51, -1)
        ]
        cases += [(ann, 3, ann), (ann, 3, bob), (ann, 3, ""), ("", 3, bob), (ann, 70, bob)]

        answers: dict[str, list[tuple[Any, ...]]] = {}
        for implementation in (V1, V2):
            async with running(
                implementation,
                order=shop.targets["order"],
                catalog=shop.targets["catalog"],
                user=shop.targets["user"],
            ) as rec:
                answers[implementation.name] = [await answer(rec, *case) for case in cases]

    differences = [
        f"{case}: v1 {one} != v2 {two}"
        for case, one, two in zip(cases, answers[V1.name], answers[V2.name], strict=True)
        if one != two
    ]
    assert not differences, "\n".join(differences)
    # The battery covered every kind of outcome.
    kinds = {(a[0], a[1]) for a in answers[V1.name]}
    assert {
        ("ok", recommendation_pb2.RECOMMENDATION_SOURCE_PERSONALIZED),
        ("ok", recommendation_pb2.RECOMMENDATION_SOURCE_POPULAR),
        ("error", grpc.StatusCode.INVALID_ARGUMENT),
        ("error", grpc.StatusCode.NOT_FOUND),
        ("error", grpc.StatusCode.PERMISSION_DENIED),
    } <= kinds
