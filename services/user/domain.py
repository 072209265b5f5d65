"""User accounts: registration, login, profile. Inputs arrive validated by the servicer."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.kit.clock import utc_now
from services.kit.errors import AlreadyExists, NotFound, Unauthenticated
from services.user.passwords import Passwords
from services.user.store import EmailTaken, UserRecord, UserStore
from services.user.tokens import AccessToken, TokenIssuer

# One message for an unknown email and a wrong password: telling them apart would let
# anyone probe which emails have accounts.
INVALID_CREDENTIALS = "invalid email or password"


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    full_name: str
    phone: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Session:
    user: User
    access_token: AccessToken


def _public(record: UserRecord) -> User:
    return User(
        user_id=record.user_id,
        email=record.email,
        full_name=record.full_name,
        phone=record.phone,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def new_user_id() -> str:
    return f"usr-{secrets.token_hex(8)}"


def normalise_email(email: str) -> str:
    return email.strip().lower()


class UserAccounts:
    def __init__(
        self,
        store: UserStore,
        passwords: Passwords,
        tokens: TokenIssuer,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_user_id,
    ) -> None:
        self.db = store.db  # get/update_profile run in its thread; the async methods await it
        self._store = store
        self._passwords = passwords
        self._tokens = tokens
        self._clock = clock
        self._new_id = new_id

    async def register(self, *, email: str, password: str, full_name: str) -> User:
        email = normalise_email(email)
        # Hash before touching the database: the write lock must never wait on Argon2.
        password_hash = await self._passwords.hash(password)
        now = self._clock()
        record = UserRecord(
            user_id=self._new_id(),
            email=email,
            full_name=full_name,
            phone="",
            password_hash=password_hash,
            created_at=now,
            updated_at=now,
        )
        try:
            await self.db.run(self._store.insert, record)
        except EmailTaken:
            raise AlreadyExists(f"a user with email {email} already exists") from None
        return _public(record)

    async def login(self, *, email: str, password: str) -> Session:
        record = await self.db.run(self._store.by_email, normalise_email(email))
        if record is None:
            await self._passwords.verify_dummy(password)
            raise Unauthenticated(INVALID_CREDENTIALS)
        if not await self._passwords.verify(record.password_hash, password):
            raise Unauthenticated(INVALID_CREDENTIALS)
        if self._passwords.needs_rehash(record.password_hash):
            # Only at login do we hold the clear-text password, so this is the moment to
            # move old hashes to the current Argon2 parameters.
            rehashed = await self._passwords.hash(password)
            await self.db.run(self._store.replace_password_hash, record.user_id, rehashed)
        return Session(user=_public(record), access_token=self._tokens.issue(record.user_id))

    def get(self, user_id: str) -> User:
        record = self._store.by_id(user_id)
        if record is None:
            raise NotFound(f"user {user_id} not found")
        return _public(record)

    def update_profile(
        self,
        user_id: str,
        *,
        full_name: str | None,
        phone: str | None,
        email: str | None = None,
    ) -> User:
        if email is not None:
            email = normalise_email(email)
        try:
            record = self._store.update_profile(
                user_id, full_name=full_name, phone=phone, email=email, updated_at=self._clock()
            )
        except EmailTaken:
            raise AlreadyExists(f"a user with email {email} already exists") from None
        if record is None:
            raise NotFound(f"user {user_id} not found")
        return _public(record)
