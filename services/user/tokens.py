"""Access tokens: RS256 JWTs the edge verifies against the JWKS in ``<run_dir>/keys``.

Claims: ``iss`` and ``aud`` are both "meshmart" (the edge's jwt_authn provider checks
them), ``sub`` is the user id (the edge forwards it as x-meshmart-user-id), ``iat``,
``nbf``, ``exp`` and a unique ``jti``. The header's ``kid`` names the key in the JWKS.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from services.user.keys import ALGORITHM, SigningKey

ISSUER = "meshmart"
AUDIENCE = "meshmart"


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int


class TokenIssuer:
    def __init__(
        self,
        key: SigningKey,
        *,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._ttl_seconds = ttl_seconds
        self._clock = clock

    def issue(self, user_id: str) -> AccessToken:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            claims, self._key.private_key, algorithm=ALGORITHM, headers={"kid": self._key.kid}
        )
        return AccessToken(token=token, expires_in=self._ttl_seconds)
