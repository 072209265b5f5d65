"""`python -m services.recommendation`"""

from services.kit.server import run
from services.recommendation.app import main

run(main)
