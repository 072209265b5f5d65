"""The notification service's SQLite file: sent messages and their recipients.

``notifications`` is the sent-messages log (one row per event, UNIQUE event_id);
``recipients`` is the service's copy of each user's address, kept from UserUpdated and
from the customer data order events carry.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass

from services.kit.clock import from_us, to_us
from services.kit.db import Connection, Database, from_row
from services.kit.errors import InvalidArgument
from services.kit.events import CONSUMER_MIGRATION

DB_FILE = "notification.sqlite3"

SCHEMA_V1 = """
CREATE TABLE notifications (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,  -- newest first = seq DESC
    notification_id TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL,                      -- the address it went to
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    event_id        TEXT NOT NULL UNIQUE,               -- one notification per event
    file            TEXT NOT NULL,                      -- the written message
    created_us      INTEGER NOT NULL
);
CREATE INDEX notifications_by_user ON notifications (user_id, seq DESC);

CREATE TABLE recipients (
    user_id    TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    full_name  TEXT NOT NULL,
    version_us INTEGER NOT NULL    -- the user's updated_at: never go back to older data
);
"""

MIGRATIONS = [SCHEMA_V1, CONSUMER_MIGRATION]

TOKEN_FIELD = "page_token"


@dataclass(frozen=True)
class Recipient:
    user_id: str
    email: str
    full_name: str


@dataclass(frozen=True)
class Notification:
    notification_id: str
    user_id: str
    channel: str
    recipient: str
    subject: str
    body: str
    event_id: str
    file: str
    created_at: dt.datetime


@dataclass(frozen=True)
class NotificationPage:
    notifications: list[Notification]
    next_page_token: str


def _token(user_id: str, before_seq: int) -> str:
    raw = json.dumps({"u": user_id, "b": before_seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _before(token: str, user_id: str) -> int | None:
    if not token:
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        body = None
    before = body.get("b") if isinstance(body, dict) else None
    # A token of another user's listing is refused rather than paging someone else.
    if not isinstance(before, int) or isinstance(before, bool) or body.get("u") != user_id:
        raise InvalidArgument(TOKEN_FIELD, "is not a page token of this user's listing")
    return before


class NotificationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def recipient(conn: Connection, user_id: str) -> Recipient | None:
        row = conn.execute(
            "SELECT user_id, email, full_name FROM recipients WHERE user_id = ?", (user_id,)
        ).fetchone()
        return None if row is None else Recipient(row[0], row[1], row[2])

    @staticmethod
    def remember_recipient(conn: Connection, recipient: Recipient, version_us: int) -> None:
        conn.execute(
            """
            INSERT INTO recipients (user_id, email, full_name, version_us) VALUES (?, ?, ?, ?)
            ON CONFLICT (user_id) DO UPDATE SET email = excluded.email,
                full_name = excluded.full_name, version_us = excluded.version_us
            WHERE excluded.version_us >= recipients.version_us
            """,
            (recipient.user_id, recipient.email, recipient.full_name, version_us),
        )

    @staticmethod
    def insert(conn: Connection, notification: Notification) -> None:
        conn.execute(
            "INSERT INTO notifications (notification_id, user_id, channel, recipient, subject,"
            " body, event_id, file, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                notification.notification_id,
                notification.user_id,
                notification.channel,
                notification.recipient,
                notification.subject,
                notification.body,
                notification.event_id,
                notification.file,
                to_us(notification.created_at),
            ),
        )

    def list_for_user(self, user_id: str, page_size: int, page_token: str) -> NotificationPage:
        before = _before(page_token, user_id)
        clause, args = "user_id = ?", [user_id]
        if before is not None:
            clause += " AND seq < ?"
            args.append(str(before))
        rows = (
            self.db.read()
            .execute(
                f"SELECT * FROM notifications WHERE {clause} ORDER BY seq DESC LIMIT ?",
                (*args, page_size + 1),
            )
            .fetchall()
        )
        more = len(rows) > page_size
        rows = rows[:page_size]
        return NotificationPage(
            notifications=[
                from_row(Notification, row, created_at=from_us(row["created_us"])) for row in rows
            ],
            next_page_token=_token(user_id, rows[-1]["seq"]) if more and rows else "",
        )

    def count_for_event(self, event_id: str) -> int:
        row = self.db.read().execute(
            "SELECT count(*) FROM notifications WHERE event_id = ?", (event_id,)
        )
        return int(row.fetchone()[0])
