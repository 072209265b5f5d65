"""Password hashing with Argon2id, off the event loop.

An Argon2 hash costs tens of milliseconds of CPU by design; run on the event loop it
would stall every other RPC of the process, so each hash and verify runs in a worker
thread (argon2-cffi releases the GIL while hashing).
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hashes and checks passwords; `verify_dummy` burns the same time for unknown users."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        # OWASP's Argon2id baseline (m=19 MiB, t=2, p=1) rather than argon2-cffi's
        # default (m=64 MiB, t=3, p=4): the whole shop shares two cores, where four lanes
        # per hash only queue, and one login measured ~0.7 s with the default under load
        # versus ~0.1 s with this. Tests pass a cheaper hasher.
        self._hasher = hasher or PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
        # A hash of a random secret with the same parameters: verifying against it when
        # the email is unknown makes that answer take as long as a wrong password, so
        # response time does not reveal which emails are registered.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    async def verify_dummy(self, password: str) -> None:
        await asyncio.to_thread(self._verify, self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with weaker parameters than the current ones."""
        return self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
