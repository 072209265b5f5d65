"""`python -m services.storefront`"""

from services.kit.server import run
from services.storefront.app import main

if __name__ == "__main__":
    run(main)
