"""`python -m services.cart`: serve CartService (needs MESHMART_UPSTREAM_CATALOG)."""

from services.cart.app import build
from services.kit.server import main

if __name__ == "__main__":
    main("cart", build)
