"""`python -m services.recommendation`"""

from services.kit.server import run
from services.recommendation.app import main

if __name__ == "__main__":
    run(main)
