"""The events the user service publishes, built from its records.

UserUpdated is written into the outbox (services/kit/outbox.py) in the transaction of
every Register and UpdateProfile, so the services that keep a copy of a user's contact
data (order, notification) follow every change.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from meshmart.user.v1 import events_pb2, user_pb2

from services.kit.clock import timestamp

USER_UPDATED = "user.UserUpdated"


class Profile(Protocol):
    """What an event needs of a user (store.UserRecord has it)."""

    @property
    def user_id(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def full_name(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def updated_at(self) -> dt.datetime: ...


def user_message(profile: Profile) -> user_pb2.User:
    """The public view of a user (never the password hash): what the API answers and
    what UserUpdated carries to every consumer of the stream."""
    return user_pb2.User(
        user_id=profile.user_id,
        email=profile.email,
        full_name=profile.full_name,
        phone=profile.phone,
        created_at=timestamp(profile.created_at),
        updated_at=timestamp(profile.updated_at),
    )


def user_updated(profile: Profile) -> events_pb2.UserUpdated:
    return events_pb2.UserUpdated(user=user_message(profile))
