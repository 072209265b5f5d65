"""`python -m services.recommendation`"""

from services.kit.server import main
from services.recommendation.app import build

if __name__ == "__main__":
    main("recommendation", build)
