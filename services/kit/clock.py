"""Time as the services store and send it: aware UTC datetimes, integer microseconds
since the epoch in SQLite (they sort and never lose precision to floats), and
google.protobuf.Timestamp on the wire."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def to_us(moment: dt.datetime) -> int:
    """Microseconds since the epoch; ValueError for a naive datetime (whose zone is a guess)."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware, got {moment!r}")
    return (moment - _EPOCH) // _MICROSECOND


def from_us(micros: int) -> dt.datetime:
    return _EPOCH + micros * _MICROSECOND


def timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp
