"""AnalyticsService over gRPC: validate, query the read models, map to protobuf."""

from __future__ import annotations

import datetime as dt
from typing import TypeAlias

import grpc
from meshmart.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from meshmart.common.v1 import common_pb2

from services.analytics.store import SalesReadModel
from services.kit import validate
from services.kit.server import ServiceSpec

Context: TypeAlias = grpc.aio.ServicerContext
SERVICE_NAME = "meshmart.analytics.v1.AnalyticsService"
MAX_RANGE_DAYS = 366
DEFAULT_POPULAR = 10


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, read_model: SalesReadModel) -> None:
        self._read_model = read_model

    async def GetSalesReport(
        self, request: analytics_pb2.GetSalesReportRequest, context: Context
    ) -> analytics_pb2.GetSalesReportResponse:
        # Both are dates by the contract (STRING_FORMAT_DATE); their order and the range's
        # length are rules between two fields, so they stay here.
        first = dt.date.fromisoformat(request.from_date)
        last = dt.date.fromisoformat(request.to_date)
        validate.require(last >= first, "to_date", "must not be before from_date")
        validate.require(
            (last - first).days < MAX_RANGE_DAYS,
            "to_date",
            f"the range may span at most {MAX_RANGE_DAYS} days",
        )
        report = await self._read_model.db.run(self._read_model.sales_report, first, last)
        return analytics_pb2.GetSalesReportResponse(
            days=[
                analytics_pb2.DailySales(
                    date=day.day,
                    orders=day.orders,
                    revenue=common_pb2.Money(amount_minor=day.revenue_minor, currency=day.currency),
                )
                for day in report.days
            ],
            products=[
                analytics_pb2.ProductSales(
                    product_id=p.product_id,
                    units=p.units,
                    revenue=common_pb2.Money(amount_minor=p.revenue_minor, currency=p.currency),
                )
                for p in report.products
            ],
        )

    async def GetPopularProducts(
        self, request: analytics_pb2.GetPopularProductsRequest, context: Context
    ) -> analytics_pb2.GetPopularProductsResponse:
        limit = request.limit or DEFAULT_POPULAR
        return analytics_pb2.GetPopularProductsResponse(
            products=[
                analytics_pb2.PopularProduct(product_id=product_id, units=units)
                for product_id, units in await self._read_model.db.run(
                    self._read_model.popular_products, limit
                )
            ]
        )


def service_spec(servicer: AnalyticsServicer) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE_NAME,
        add=lambda server: analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(
            servicer, server
        ),
    )
