"""What a user holds, read from the grants: the grants active now, the end of an unbroken run, the summary."""
from __future__ import annotations

from datetime import datetime

from app.clock import iso, utcnow
from app.models import Grant, User


def is_active(grant: Grant, now: datetime) -> bool:
    """True when the grant holds at `now`."""
    return grant.revoked_at is None and grant.starts_at <= now and (grant.ends_at is None or grant.ends_at > now)


def active_grants(user: User, entitlement: str | None = None, now: datetime | None = None) -> list[Grant]:
    """Grants of a user that hold now."""
    now = now or utcnow()
    query = Grant.select().where(
        (Grant.user == user)
        & Grant.revoked_at.is_null()
        & (Grant.starts_at <= now)
        & (Grant.ends_at.is_null() | (Grant.ends_at > now))
    )
    if entitlement:
        query = query.where(Grant.entitlement == entitlement)
    return list(query.order_by(Grant.starts_at))


def current_end(user: User | int, entitlement: str, now: datetime | None = None) -> datetime | None:
    """When the entitlement's unbroken run of grants from now ends (None: not held; datetime.max: lifetime)."""
    now = now or utcnow()
    grants = Grant.select(Grant.starts_at, Grant.ends_at).where(
        (Grant.user == user)
        & (Grant.entitlement == entitlement)
        & Grant.revoked_at.is_null()
        & (Grant.ends_at.is_null() | (Grant.ends_at > now))
    ).order_by(Grant.starts_at)
    return run_end(grants, now)


def end_for(telegram_id: int, entitlement: str, now: datetime | None = None) -> datetime | None:
    """`current_end` by Telegram id, in one indexed query (the backend's hot check); None also for a user never seen."""
    now = now or utcnow()
    grants = (
        Grant.select(Grant.starts_at, Grant.ends_at)
        .join(User)
        .where(
            (User.telegram_id == telegram_id)
            & (Grant.entitlement == entitlement)
            & Grant.revoked_at.is_null()
            & (Grant.ends_at.is_null() | (Grant.ends_at > now))
        )
        .order_by(Grant.starts_at)
    )
    return run_end(grants, now)


def run_end(grants, now: datetime) -> datetime | None:
    """The end of the unbroken run of `grants` (ordered by start) that covers `now`."""
    end: datetime | None = None
    for grant in grants:
        cover_from = end or now
        if grant.starts_at > cover_from:
            break
        if grant.ends_at is None:
            return datetime.max
        end = max(end or now, grant.ends_at)
    return end


def summary(user: User, now: datetime | None = None) -> list[dict]:
    """What a user holds now: each entitlement with its end (None for lifetime)."""
    now = now or utcnow()
    keys = sorted({g.entitlement for g in active_grants(user, now=now)})
    result = []
    for key in keys:
        end = current_end(user, key, now)
        result.append({"entitlement": key, "active": True, "expires_at": None if end == datetime.max else iso(end)})
    return result
