"""`python -m services.order`: the order service.

Upstreams: MESHMART_UPSTREAM_USER, _CART, _INVENTORY, _PAYMENT (host:port). Saga
timeouts and the reservation TTL: see settings.py.
"""

from services.kit.server import main
from services.order.app import build

if __name__ == "__main__":
    main("order", build)
