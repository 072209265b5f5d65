"""Settings only the notification service reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.kit.config import ServiceConfig, env_str


@dataclass(frozen=True)
class NotificationSettings:
    # Where the "emails" are written (one .eml file each).
    mail_dir: Path


def load_settings(
    config: ServiceConfig, env: Mapping[str, str] | None = None
) -> NotificationSettings:
    default = str(config.run_dir / "mail")
    return NotificationSettings(
        mail_dir=Path(env_str("MESHMART_NOTIFICATION_MAIL_DIR", default, env=env))
    )
