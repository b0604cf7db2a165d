"""Time in one place: naive UTC datetimes, as stored in the database."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """The current time as a naive UTC datetime."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def from_timestamp(seconds: float) -> datetime:
    """A Unix timestamp as a naive UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with a `Z`, or None."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"
