"""``python -m services.notification``: serve NotificationService and consume the
order, payment and user events that become notifications."""

from services.kit.server import main
from services.notification.app import build

if __name__ == "__main__":
    main("notification", build)
