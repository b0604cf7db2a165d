"""What a user holds, read from the grants: the grants active now, the end of an unbroken run, the summary,
and the facts a payment's grant is decided on."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.clock import iso, utcnow
from app.db import database
from app.models import EntitlementState, Grant, Subscription, User


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


@dataclass(frozen=True)
class Known:
    """What a grant change read under the user's lock, handed to its transitions so they read nothing again."""

    state: EntitlementState | None
    holds: bool
    end: datetime | None  # None with `holds`: for good
    last_sequence: int
    source: str | None = None  # the source of the grant the change made, so of the grant that changed last


@dataclass
class PaymentFacts:
    """What granting one payment must know, read in one statement under the user's lock.

    The holder's grants of the entitlement that have not ended, whether the payment was taken
    back (`reversal`), the grant it already made (`existing`), the holder's recorded state and
    the last sequence number of their transitions (the transitions of the change take the next).
    """

    grants: list[tuple[datetime, datetime | None]]
    reversal: str | None
    existing: int | None
    state: EntitlementState | None
    last_sequence: int

    def run_end(self, now: datetime, *also: tuple[datetime, datetime | None]) -> datetime | None:
        """`current_end` from these grants (and `also`), as `run_end` computes it."""
        grants = sorted([*self.grants, *also], key=lambda g: g[0])
        return run_end([_Span(start, end) for start, end in grants], now)


@dataclass(frozen=True)
class _Span:
    starts_at: datetime
    ends_at: datetime | None


_FACTS_SQL = """
SELECT 'g', starts_at, ends_at, CAST(NULL AS VARCHAR(32)), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT) FROM "grant"
 WHERE user_id = {p} AND entitlement = {p} AND revoked_at IS NULL AND (ends_at IS NULL OR ends_at > {p})
UNION ALL
SELECT 'r', NULL, NULL, action, id, NULL FROM ledger_entry
 WHERE source = {p} AND reference = {p} AND action IN ('refund', 'dispute')
UNION ALL
SELECT 'e', NULL, NULL, NULL, id, NULL FROM "grant" WHERE source = {p} AND reference = {p}
UNION ALL
SELECT 's', NULL, ends_at, CASE WHEN holding THEN 'holding' ELSE 'idle' END, id, version FROM entitlement_state
 WHERE user_id = {p} AND entitlement = {p}
UNION ALL
SELECT 'q', NULL, NULL, NULL, MAX(sequence), NULL FROM entitlement_transition WHERE user_id = {p}
"""
_facts_sql: dict[str, str] = {}


def payment_facts(user_id: int, entitlement: str, source: str, reference: str, now: datetime) -> PaymentFacts:
    """Read `PaymentFacts` in one round trip (call it with the user's row locked)."""
    db = database.obj
    sql = _facts_sql.get(db.param) or _facts_sql.setdefault(db.param, _FACTS_SQL.format(p=db.param))
    params = (user_id, entitlement, now, source, reference, source, reference, user_id, entitlement, user_id)
    when = Grant.starts_at.python_value
    grants, reversals, existing, state, last = [], [], None, None, 0
    for kind, at1, at2, word, n1, n2 in db.execute_sql(sql, params).fetchall():
        if kind == "g":
            grants.append((when(at1), when(at2)))
        elif kind == "r":
            reversals.append((n1, word))
        elif kind == "e":
            existing = n1
        elif kind == "s":
            state = EntitlementState(id=n1, user=user_id, entitlement=entitlement, holding=word == "holding",
                                     ends_at=when(at2), version=n2)
        elif kind == "q":
            last = n1 or 0
    reversal = min(reversals)[1] if reversals else None
    return PaymentFacts(grants, reversal, existing, state, last)


def lapse_reason(user_id: int, entitlement: str, end: datetime | None) -> str:
    """Why a run of grants that ended at `end` ended: `canceled` when it was a canceled subscription's, else `expired`."""
    if end is None:
        return "expired"
    keys = Grant.select(Grant.subscription_id).where(
        (Grant.user == user_id) & (Grant.entitlement == entitlement) & (Grant.ends_at == end) & Grant.subscription_id.is_null(False)
    )
    rows = Subscription.select(Subscription.state, Subscription.end_reason).where(Subscription.key.in_(keys))
    for row in rows:
        if row.state == "canceled" or (row.state == "ended" and row.end_reason == "canceled"):
            return "canceled"
    return "expired"
