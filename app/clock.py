"""Time in one place: naive UTC datetimes, as stored in the database."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

MAX_DAYS = 36_500  # the longest any single grant may run (about a century), by days or by `until`
# No end is ever stored past this: far beyond any real one, yet far enough below `datetime.max`
# (the lifetime mark in arithmetic) that adding to an end never overflows.
LATEST = datetime(9000, 1, 1)


def utcnow() -> datetime:
    """The current time as a naive UTC datetime."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def from_timestamp(seconds: float) -> datetime:
    """A Unix timestamp as a naive UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with a `Z`, or None."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def later(start: datetime, span: timedelta) -> datetime:
    """`start + span`, never past LATEST (and never before `start`), whatever the sizes."""
    try:
        end = start + span
    except OverflowError:
        end = datetime.max
    return min(end, max(start, LATEST))


def add_days(start: datetime, days: float) -> datetime:
    """`start` plus `days`, never past LATEST."""
    try:
        span = timedelta(days=days)
    except OverflowError:
        span = timedelta.max
    return later(start, span)
