"""Subscriptions as payers live them: one record per provider subscription, its state and the history of its state.

A subscription is `active` (renews), `canceled` (paid to the period end, will not renew),
`past_due` (a renewal failed; in grace) or `ended`. Every change is written in the transaction
of the grants it explains, with a `SubscriptionChange` row, the metric and the outgoing webhook
(`subscription.canceled|resumed|past_due|ended`). A failed renewal extends the entitlement by
the plan's `grace_days` as a grant of source `grace`; a renewal in grace takes over where the
paid period ended, and the grace grant is revoked (nothing stacks on top); the lapse pass ends
subscriptions whose paid period or grace has run out.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import peewee

from app import entitlements, holdings, metrics
from app.clock import iso, utcnow
from app.db import for_update, transaction
from app.models import Grant, Subscription, SubscriptionChange, User
from app.webhooks import outbox

ACTIVE, CANCELED, PAST_DUE, ENDED = "active", "canceled", "past_due", "ended"
STATES = (ACTIVE, CANCELED, PAST_DUE, ENDED)
GRACE = "grace"  # the source of grace grants
# The outgoing webhook type of a change into each state.
WEBHOOK_TYPES = {
    CANCELED: "subscription.canceled",
    ACTIVE: "subscription.resumed",
    PAST_DUE: "subscription.past_due",
    ENDED: "subscription.ended",
}
# Who may have canceled a subscription: the payer (in Telegram or Stripe's portal) or this service (bot, Mini App, CLI).
BY_PAYER, BY_SERVICE = "payer", "service"


class UnknownSubscription(LookupError):
    """No subscription with this key (or id) is known here."""


# -- reading -------------------------------------------------------------------------------


def find(key: str) -> Subscription | None:
    """The subscription whose grants carry `subscription_id == key`, or None."""
    return Subscription.get_or_none(Subscription.key == key)


def of_user(user: User) -> list[Subscription]:
    """A user's subscriptions, newest first."""
    return list(Subscription.select().where(Subscription.user == user).order_by(Subscription.id.desc()))


def owned_by(user: User, subscription_id: int) -> Subscription | None:
    """The user's subscription with this id, or None (also when it is someone else's)."""
    return Subscription.get_or_none((Subscription.id == subscription_id) & (Subscription.user == user))


def list_subscriptions(telegram_id: int | None = None, state: str | None = None) -> list[Subscription]:
    """Subscriptions, newest first, optionally of one user and in one state."""
    query = Subscription.select(Subscription, User).join(User).order_by(Subscription.id.desc())
    if telegram_id is not None:
        query = query.where(User.telegram_id == int(telegram_id))
    if state is not None:
        query = query.where(Subscription.state == state)
    return list(query)


def history(row: Subscription) -> list[SubscriptionChange]:
    """A subscription's state changes, oldest first."""
    return list(SubscriptionChange.select().where(SubscriptionChange.subscription == row).order_by(SubscriptionChange.id))


def renews(row: Subscription) -> bool:
    """True when the subscription will renew by itself at its period end."""
    return row.state == ACTIVE


def to_dict(row: Subscription) -> dict:
    """A subscription as JSON: id, provider, plan, state, its period end and, while in grace, the grace's end."""
    return {
        "id": row.id,
        "user": row.user.telegram_id,
        "provider": row.provider,
        "plan": row.plan,
        "entitlement": row.entitlement,
        "state": row.state,
        "period_end": iso(row.period_end),
        "grace_until": iso(row.grace_until) if row.state == PAST_DUE else None,
        "renews": renews(row),
        "canceled_by": row.canceled_by if row.state == CANCELED else None,
        "end_reason": row.end_reason,
        "created_at": iso(row.created_at),
        "ended_at": iso(row.ended_at),
    }


def change_to_dict(row: SubscriptionChange) -> dict:
    """A state change as JSON."""
    return {"at": iso(row.at), "from": row.previous, "to": row.state, "actor": row.actor, "reason": row.reason}


# -- changes -------------------------------------------------------------------------------


def _locked(row: Subscription) -> Subscription:
    """The row again, locked until the transaction ends, so two changes of one subscription queue."""
    return for_update(Subscription.select().where(Subscription.id == row.id)).get()


def change(row: Subscription, state: str, *, actor: str, reason: str | None = None, **fields) -> bool:
    """Move a subscription to `state` (inside the caller's transaction), recording the change; False when it already was.

    `fields` are other columns to set with it (`canceled_by`, `grace_until`, ...).
    """
    if state not in STATES:
        raise ValueError(f"unknown subscription state {state!r}")
    now = utcnow()
    if row.state == state:
        if fields:
            Subscription.update(updated_at=now, **fields).where(Subscription.id == row.id).execute()
            for name, value in fields.items():
                setattr(row, name, value)
        return False
    previous = row.state
    values = {"state": state, "updated_at": now, **fields}
    if state == ENDED:
        values.setdefault("ended_at", now)
        values.setdefault("end_reason", reason)
    Subscription.update(**values).where(Subscription.id == row.id).execute()
    for name, value in values.items():
        setattr(row, name, value)
    SubscriptionChange.create(subscription=row, at=now, previous=previous, state=state, actor=actor, reason=reason)
    metrics.subscription_changes.labels(provider=row.provider, state=state).inc()
    user = User.get_by_id(row.user_id)
    outbox.emit(WEBHOOK_TYPES[state], user, {"subscription": to_dict(row), "reason": reason}, entitlement=row.entitlement)
    return True


def observe_payment(
    user: User, plan, *, provider: str, key: str, period_end: datetime | None, charge_id: str | None = None, actor: str
) -> Subscription:
    """Record a paid period of a subscription (inside the grant's transaction): the record is made on its first payment.

    A payment that arrives while the subscription is past due takes over from the grace: the
    grace grant is revoked, so no day is counted twice, and the subscription is active again.
    """
    with transaction():
        row = find(key)
        if row is None:
            try:
                with transaction():
                    row = Subscription.create(
                        user=user, provider=provider, key=key, plan=plan.key, entitlement=plan.entitlement,
                        state=ACTIVE, period_end=period_end, charge_id=charge_id,
                    )
                    SubscriptionChange.create(subscription=row, previous=None, state=ACTIVE, actor=actor, reason="paid")
                    metrics.subscription_changes.labels(provider=provider, state=ACTIVE).inc()
                    return row
            except peewee.IntegrityError:
                row = find(key)
        row = _locked(row)
        fields = {"updated_at": utcnow()}
        if period_end is not None and (row.period_end is None or period_end > row.period_end):
            fields["period_end"] = period_end
        if charge_id is not None:
            fields["charge_id"] = charge_id
        Subscription.update(**fields).where(Subscription.id == row.id).execute()
        for name, value in fields.items():
            setattr(row, name, value)
        _end_grace(row)
        if row.state in (PAST_DUE, ENDED):
            change(row, ACTIVE, actor=actor, reason="renewed", grace_until=None, ended_at=None, end_reason=None)
        return row


def move(row: Subscription, state: str, *, actor: str, reason: str | None = None, **fields) -> bool:
    """`change`, in a transaction of its own (or the caller's) with the subscription locked."""
    with transaction():
        locked = _locked(row)
        changed = change(locked, state, actor=actor, reason=reason, **fields)
    row.__data__.update(locked.__data__)
    return changed


def _grace_reference(row: Subscription) -> str:
    return f"{row.provider}:{row.key}:{iso(row.period_end)}"


def _end_grace(row: Subscription) -> None:
    """A renewal took over: the grace grant of this period ends now."""
    for grant in Grant.select().where((Grant.source == GRACE) & (Grant.subscription_id == row.key) & Grant.revoked_at.is_null()):
        entitlements.revoke_reference(GRACE, grant.reference, reason="renewed", actor="system")


def fail_renewal(row: Subscription, plan, *, actor: str, reason: str = "renewal_failed") -> bool:
    """A renewal could not be charged: past due, and the entitlement is extended by the plan's grace (once per period).

    Returns True when this call moved the subscription into `past_due`.
    """
    with transaction():
        row = _locked(row)
        if row.state in (PAST_DUE, ENDED):
            return False
        grace_days = plan.grace_days if plan is not None else 0
        base = row.period_end or utcnow()
        grace_until = base + timedelta(days=grace_days) if grace_days else None
        if grace_until is not None and grace_until > utcnow():
            entitlements.grant(
                User.get_by_id(row.user_id), row.entitlement, source=GRACE, reference=_grace_reference(row),
                until=grace_until, plan=row.plan, subscription_id=row.key,
                detail={"subscription": row.id, "grace_days": grace_days},
            )
        return change(row, PAST_DUE, actor=actor, reason=reason, grace_until=grace_until)


def end(row: Subscription, *, reason: str, actor: str) -> bool:
    """Mark a subscription ended (its grants run out or were revoked by the caller); False when it already was."""
    with transaction():
        return change(_locked(row), ENDED, actor=actor, reason=reason)


# -- the lapse pass (run by the expiry job) ---------------------------------------------------


def lapse_due(now: datetime | None = None, limit: int = 500) -> int:
    """End the subscriptions whose paid period (canceled) or grace (past due) has run out; returns how many ended."""
    now = now or utcnow()
    canceled = Subscription.select().where((Subscription.state == CANCELED) & (Subscription.period_end <= now))
    overdue = Subscription.select().where(
        (Subscription.state == PAST_DUE)
        & ((Subscription.grace_until <= now) | (Subscription.grace_until.is_null() & (Subscription.period_end <= now)))
    )
    ended = 0
    for row in list(canceled.limit(limit)) + list(overdue.limit(limit)):
        with transaction():
            current = _locked(row)
            if current.state == CANCELED:
                ended += change(current, ENDED, actor="system", reason="canceled")
            elif current.state == PAST_DUE:
                ended += change(current, ENDED, actor="system", reason="expired")
    return ended


def lapse_reason(user_id: int, entitlement: str, end: datetime | None) -> str:
    """Why a run of grants that ended at `end` ended: `canceled` when it was a canceled subscription's, else `expired`."""
    return holdings.lapse_reason(user_id, entitlement, end)


def backfill() -> None:
    """A record for each subscription granted before subscriptions had records, from its latest grant."""
    now = utcnow()
    keys = Grant.select(Grant.subscription_id).where(Grant.subscription_id.is_null(False)).distinct().tuples()
    for (key,) in list(keys):
        if find(key) is not None:
            continue
        latest = Grant.select().where(Grant.subscription_id == key).order_by(Grant.ends_at.desc(), Grant.id.desc()).first()
        if latest is None or latest.source == GRACE:
            continue
        running = latest.revoked_at is None and (latest.ends_at is None or latest.ends_at > now)
        Subscription.create(
            user=latest.user_id, provider=latest.source, key=key, plan=latest.plan or "", entitlement=latest.entitlement,
            state=ACTIVE if running else ENDED, period_end=latest.ends_at,
            charge_id=latest.reference if latest.source == "telegram" else None,
            ended_at=None if running else (latest.revoked_at or latest.ends_at), end_reason=None if running else "expired",
        )
