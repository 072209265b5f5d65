"""The user service's database: users and their password hashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.kit.db import Database, IntegrityError, Row, from_row, is_unique_violation
from services.kit.outbox import OUTBOX_MIGRATION, Outbox
from services.user.events import USER_UPDATED, user_updated

DB_FILE = "user.sqlite3"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        user_id       TEXT PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
        full_name     TEXT NOT NULL,
        phone         TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    """,
    # Events (UserUpdated) leave through the transactional outbox.
    OUTBOX_MIGRATION,
)

_COLUMNS = "user_id, email, full_name, phone, password_hash, created_at, updated_at"


class EmailTaken(Exception):
    """Another user already registered this email."""


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    email: str
    full_name: str
    phone: str
    password_hash: str
    created_at: datetime
    updated_at: datetime


def _record(row: Row) -> UserRecord:
    return from_row(
        UserRecord,
        row,
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


class UserStore:
    def __init__(self, db: Database, outbox: Outbox | None = None) -> None:
        self.db = db
        # Every change of a profile writes UserUpdated in its own transaction.
        self._outbox = outbox or Outbox("user")

    def insert(self, user: UserRecord) -> None:
        """Store a new user; EmailTaken when the (lower-cased) email is registered."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    f"INSERT INTO users ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.user_id,
                        user.email,
                        user.full_name,
                        user.phone,
                        user.password_hash,
                        user.created_at.isoformat(),
                        user.updated_at.isoformat(),
                    ),
                )
                self._outbox.add(
                    conn, USER_UPDATED, user_updated(user), occurred_at=user.updated_at
                )
        except IntegrityError as error:
            # The UNIQUE index decides, not a prior SELECT: two concurrent registrations
            # of one email (even on two processes) cannot both pass it.
            if is_unique_violation(error, "users", "email"):
                raise EmailTaken(user.email) from None
            raise

    def by_id(self, user_id: str) -> UserRecord | None:
        row = (
            self.db.read()
            .execute(f"SELECT {_COLUMNS} FROM users WHERE user_id = ?", (user_id,))
            .fetchone()
        )
        return None if row is None else _record(row)

    def by_email(self, email: str) -> UserRecord | None:
        row = (
            self.db.read()
            .execute(f"SELECT {_COLUMNS} FROM users WHERE email = ?", (email,))
            .fetchone()
        )
        return None if row is None else _record(row)

    def update_profile(
        self,
        user_id: str,
        *,
        full_name: str | None,
        phone: str | None,
        updated_at: datetime,
        email: str | None = None,
    ) -> UserRecord | None:
        """Change the given fields (None keeps a field); None when the user is unknown,
        EmailTaken when ``email`` belongs to another user."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "UPDATE users SET full_name = coalesce(?, full_name),"
                    " phone = coalesce(?, phone), email = coalesce(?, email), updated_at = ?"
                    " WHERE user_id = ?",
                    (full_name, phone, email, updated_at.isoformat(), user_id),
                )
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM users WHERE user_id = ?", (user_id,)
                ).fetchone()
                if row is None:
                    return None
                record = _record(row)
                self._outbox.add(conn, USER_UPDATED, user_updated(record), occurred_at=updated_at)
        except IntegrityError as error:
            if email is not None and is_unique_violation(error, "users", "email"):
                raise EmailTaken(email) from None
            raise
        return record

    def replace_password_hash(self, user_id: str, password_hash: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)
            )
