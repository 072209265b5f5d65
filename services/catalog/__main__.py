"""``python -m services.catalog``: serve CatalogService."""

from services.catalog.app import build
from services.kit.server import main

if __name__ == "__main__":
    main("catalog", build)
