"""Where the "emails" go: one RFC 5322 file per notification, never sent anywhere.

A file is written completely (temp file, fsync, rename) before the notification row
commits, and its name is derived from the event id: a redelivered event rewrites the
same file, so every message exists exactly once however the process dies.
"""

from __future__ import annotations

import datetime as dt
import os
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

SENDER = formataddr(("meshmart", "orders@meshmart.local"))


class Mailbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_of(self, notification_id: str) -> Path:
        return self.directory / f"{notification_id}.eml"

    def write(
        self,
        *,
        notification_id: str,
        event_id: str,
        to_name: str,
        to_address: str,
        subject: str,
        body: str,
        created_at: dt.datetime,
    ) -> Path:
        message = EmailMessage()
        message["From"] = SENDER
        message["To"] = (
            formataddr((to_name, to_address)) if to_address else "undisclosed-recipients:;"
        )
        message["Subject"] = subject
        message["Date"] = format_datetime(created_at)
        message["Message-ID"] = f"<{notification_id}@meshmart.local>"
        message["X-Meshmart-Event-Id"] = event_id
        message.set_content(body)

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_of(notification_id)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            out.write(message.as_bytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
        return path
