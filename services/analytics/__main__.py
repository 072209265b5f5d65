"""``python -m services.analytics``: serve AnalyticsService and keep its read models
current from the ORDERS and PAYMENTS streams."""

from services.analytics.app import build
from services.kit.server import main

if __name__ == "__main__":
    main("analytics", build)
