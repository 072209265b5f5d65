"""``python -m services.inventory``: serve InventoryService, with the expiry sweeper."""

from services.inventory.app import build
from services.kit.server import main

if __name__ == "__main__":
    main("inventory", build)
