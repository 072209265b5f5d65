"""Settings only the user service reads (besides the kit's ServiceConfig)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import read_settings, setting


@dataclass(frozen=True)
class UserSettings:
    # Lifetime of an access token; the edge rejects it afterwards and the user logs in again.
    token_ttl_seconds: int = setting(
        "MESHMART_USER_TOKEN_TTL_SECONDS", 3600, minimum=60, maximum=86400
    )


def load_settings(env: Mapping[str, str] | None = None) -> UserSettings:
    return read_settings(UserSettings, env)
