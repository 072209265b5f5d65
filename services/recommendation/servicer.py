"""RecommendationService over gRPC: validate, ask the Recommender, map to the response."""

from __future__ import annotations

from typing import Any

from meshmart.recommendation.v1 import recommendation_pb2, recommendation_pb2_grpc

from services.kit.context import ensure_caller_may_act_for
from services.recommendation.domain import Recommender, Source

DEFAULT_LIMIT = 10
# Response header naming the release that answered ("v1" here, "v2" for the Go
# implementation in services/recommendation-go): callers of the mesh's canary split tell
# the two apart by it. The same key as a request header routes to one subset
# (consul/config-entries/recommendation/service-router.hcl).
VERSION_HEADER = "x-meshmart-version"

_SOURCES = {
    Source.PERSONALIZED: recommendation_pb2.RECOMMENDATION_SOURCE_PERSONALIZED,
    Source.POPULAR: recommendation_pb2.RECOMMENDATION_SOURCE_POPULAR,
}


class RecommendationServicer(recommendation_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, recommender: Recommender, version: str = "dev") -> None:
        self._recommender = recommender
        self._version_header = ((VERSION_HEADER, version),)

    async def Recommend(
        self,
        request: recommendation_pb2.RecommendRequest,
        context: Any,
    ) -> recommendation_pb2.RecommendResponse:
        await context.send_initial_metadata(self._version_header)
        user_id = request.user_id.strip()
        # 0 is proto3's "unset": the default (the contract bounds any other value).
        limit = request.limit or DEFAULT_LIMIT
        ensure_caller_may_act_for(context, user_id)
        recommendation = await self._recommender.recommend(user_id, limit)
        return recommendation_pb2.RecommendResponse(
            products=recommendation.products, source=_SOURCES[recommendation.source]
        )
