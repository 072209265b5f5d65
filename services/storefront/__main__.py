"""`python -m services.storefront`"""

from services.kit.server import main
from services.storefront.app import build

if __name__ == "__main__":
    main("storefront", build)
