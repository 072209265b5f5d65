"""`python -m services.storefront`"""

from services.kit.server import run
from services.storefront.app import main

run(main)
