"""The events the user service publishes, built from its records.

UserUpdated is written into the outbox (services/kit/outbox.py) in the transaction of
every Register and UpdateProfile, so the services that keep a copy of a user's contact
data (order, notification) follow every change.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from google.protobuf import timestamp_pb2
from meshmart.user.v1 import events_pb2, user_pb2

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


def _timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def user_updated(profile: Profile) -> events_pb2.UserUpdated:
    # Never the password hash: events are read by every consumer of the stream.
    return events_pb2.UserUpdated(
        user=user_pb2.User(
            user_id=profile.user_id,
            email=profile.email,
            full_name=profile.full_name,
            phone=profile.phone,
            created_at=_timestamp(profile.created_at),
            updated_at=_timestamp(profile.updated_at),
        )
    )
