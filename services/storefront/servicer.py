"""StorefrontService over gRPC: validate, check the caller, build the dashboard."""

from __future__ import annotations

from typing import Any

from meshmart.storefront.v1 import storefront_pb2, storefront_pb2_grpc

from services.kit.context import ensure_caller_may_act_for
from services.storefront.dashboard import DashboardBuilder


class StorefrontServicer(storefront_pb2_grpc.StorefrontServiceServicer):
    def __init__(self, dashboards: DashboardBuilder) -> None:
        self._dashboards = dashboards

    async def GetDashboard(
        self, request: storefront_pb2.GetDashboardRequest, context: Any
    ) -> storefront_pb2.GetDashboardResponse:
        user_id = request.user_id.strip()
        # Checked here, not left to the upstreams: each of them would refuse on its own and
        # the dashboard would come back "degraded" instead of PERMISSION_DENIED.
        ensure_caller_may_act_for(context, user_id)
        return await self._dashboards.build(user_id)
