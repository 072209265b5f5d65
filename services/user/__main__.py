"""``python -m services.user``: serve UserService."""

from services.kit.server import main
from services.user.app import build

if __name__ == "__main__":
    main("user", build)
