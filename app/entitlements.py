"""Entitlements as the union of grants: grant, extend, revoke, and what is active now."""
from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TYPE_CHECKING, Callable

import peewee

from app import metrics
from app.clock import LATEST, add_days, iso, later, utcnow
from app.db import database, for_update, is_postgres, lock_payment, transaction
from app.holdings import Known, payment_facts
from app.models import Grant, LedgerEntry, User
# The reads of what a user holds are part of this service's surface too.
from app.holdings import active_grants, current_end, end_for, is_active, summary  # noqa: F401

if TYPE_CHECKING:
    from app.plans import Plan


# Ledger actions that take a payment back for good, and how messages name them; a partial refund is neither.
REVERSALS = {"refund": "refunded", "dispute": "disputed"}
# Grants from these sources are payments, reported to the operator's backend as `payment.succeeded`.
PAYMENT_SOURCES = ("telegram", "stripe")


@dataclass(frozen=True)
class GrantResult:
    """The grant for a payment, and whether this call created it (False: it existed)."""

    grant: Grant
    created: bool
    held_until: datetime | None = None  # a new grant: where the holder's run now ends (datetime.max: for good)


@dataclass(frozen=True)
class Fulfilment:
    """What a payment granted, to whom, and whether this delivery created the grant (Stars and card payments alike)."""

    user: User
    plan: "Plan"
    grant: Grant | None  # None for a gift's payment, which grants its buyer nothing
    created: bool
    renewal: bool = False
    held_until: datetime | None = None  # where the payer's run ends after this grant, when the grant says
    gift: Any = None  # the gift a gift's payment opened

    @property
    def subscription(self) -> bool:
        """True when the payment belongs to a subscription."""
        return self.grant is not None and self.grant.subscription_id is not None


class PaymentReversed(Exception):
    """The payment was refunded or disputed before it was granted, so it never grants."""


@dataclass
class Hooks:
    """What hangs off an entitlement change, called inside the change's transaction; wired by `app.composition`.

    `holding_changed(user_id, entitlement, *, now, locked_user, revoke_reason, known)`: the user's holding may
    have changed (transitions); `revoke_reason` says why, when grants were revoked; `known`, when given, is
    what the change already read (the holder's state, what they hold now, their last sequence). `payment_granted(user, grant, detail)` and `payment_reversed(user, data, entitlement)`: a
    payment granted or was taken back (the operator's backend hears of it).
    """

    holding_changed: Callable[..., object] | None = None
    payment_granted: Callable[..., object] | None = None
    payment_reversed: Callable[..., object] | None = None

    def wired(self) -> "Hooks":
        """These hooks, or an error naming the missing composition (a change must never skip what hangs off it)."""
        if self.holding_changed is None or self.payment_granted is None or self.payment_reversed is None:
            raise RuntimeError("the entitlement hooks are not wired: call app.composition.wire() first")
        return self


hooks = Hooks()


def grant(
    user: User,
    entitlement: str,
    *,
    source: str,
    reference: str,
    days: float | None = None,
    until: datetime | None = None,
    plan: str | None = None,
    subscription_id: str | None = None,
    stack: bool = True,
    actor: str = "system",
    detail: dict | None = None,
    locked: bool = False,
) -> GrantResult:
    """Grant an entitlement for one payment or action; a second grant for the same reference is a no-op.

    `until` sets the end outright (subscriptions); `days` counts from now, or from the end
    of what the user already holds when `stack` is true, so a second purchase extends.
    Neither: a lifetime grant. `locked`: the caller's open transaction holds the user's row lock and
    this payment's lock already (`users.lock_user(..., payment=(source, reference))`).
    """
    wired = hooks.wired()
    # Inside the caller's transaction no savepoint: nothing is written before a refusal (PaymentReversed).
    with transaction() if not database.in_transaction() else contextlib.nullcontext():
        if not locked:
            # Serialises a user's grants, so two payments at once cannot both stack on the same end.
            for_update(User.select(User.id).where(User.id == user.id)).get()
            lock_payment(source, reference)
        now = utcnow()
        # Checked under the user's lock, which `revoke_payment` takes too, so a refund cannot land in between.
        facts = payment_facts(user.id, entitlement, source, reference, now)
        if facts.existing is not None:
            return GrantResult(Grant.get_by_id(facts.existing), False)
        if facts.reversal is not None:
            raise PaymentReversed(f"payment {reference} was {REVERSALS[facts.reversal]} before it was granted")
        starts_at = now
        ends_at = None if until is None else min(until, LATEST)
        action = "grant"
        if until is None and days is not None:
            held_until = facts.run_end(now) if stack else None
            if held_until is not None and held_until != datetime.max:
                starts_at = held_until
                action = "extend"
            ends_at = add_days(starts_at, days)
        row = _insert_grant(
            user=user, entitlement=entitlement, source=source, reference=reference, plan=plan,
            subscription_id=subscription_id, starts_at=starts_at, ends_at=ends_at, created_at=now,
        )
        if row is None:
            # Another worker granted the same payment a moment ago.
            return GrantResult(Grant.get((Grant.source == source) & (Grant.reference == reference)), False)
        LedgerEntry.insert(
            user=user,
            action=action,
            entitlement=entitlement,
            source=source,
            reference=reference,
            detail={"actor": actor, "plan": plan, "starts_at": iso(starts_at), "ends_at": iso(ends_at), **(detail or {})},
        ).execute()
        if source in PAYMENT_SOURCES:
            wired.payment_granted(user, row, _payment_data(row, detail))
        end = facts.run_end(now, (starts_at, ends_at))
        known = Known(facts.state, end is not None, None if end in (None, datetime.max) else end, facts.last_sequence, source)
        wired.holding_changed(user.id, entitlement, now=now, locked_user=user, revoke_reason=None, known=known)
    metrics.entitlements_granted.labels(source=source).inc()
    return GrantResult(row, True, end)


def _insert_grant(**values) -> Grant | None:
    """Insert a payment's grant; None when that payment's grant exists (one `INSERT … ON CONFLICT DO NOTHING` on PostgreSQL)."""
    if is_postgres():
        inserted = list(Grant.insert(**values).on_conflict_ignore().returning(Grant.id).tuples().execute())
        return Grant(id=inserted[0][0], revoked_at=None, revoke_reason=None, **values) if inserted else None
    try:
        with transaction():
            return Grant.create(**values)
    except peewee.IntegrityError:
        return None


def _close_gap(user_id: int, entitlement: str, now: datetime) -> None:
    """Move grants that were stacked after a revoked one forward, so the payer loses no paid time."""
    rows = Grant.select().where(
        (Grant.user == user_id)
        & (Grant.entitlement == entitlement)
        & Grant.revoked_at.is_null()
        & (Grant.ends_at.is_null() | (Grant.ends_at > now))
    ).order_by(Grant.starts_at, Grant.id)
    covered_until = now
    for row in rows:
        if row.ends_at is None:
            return
        if row.starts_at > covered_until:
            starts_at, ends_at = covered_until, later(covered_until, row.ends_at - row.starts_at)
            Grant.update(starts_at=starts_at, ends_at=ends_at).where(Grant.id == row.id).execute()
            LedgerEntry.create(
                user=user_id, action="reschedule", entitlement=entitlement, source=row.source, reference=row.reference,
                detail={"starts_at": iso(starts_at), "ends_at": iso(ends_at), "was_starts_at": iso(row.starts_at)},
            )
            row.ends_at = ends_at
        covered_until = max(covered_until, row.ends_at)


def _revoke(grants: list[Grant], reason: str, actor: str, action: str = "revoke") -> list[Grant]:
    wired = hooks.wired()
    # The users first, in id order, as `grant` and `revoke_payment` take them: grant rows are locked only after.
    for user_id in sorted({row.user_id for row in grants}):
        for_update(User.select(User.id).where(User.id == user_id)).get()
    now = utcnow()
    revoked = []
    for row in grants:
        updated = (
            Grant.update(revoked_at=now, revoke_reason=reason)
            .where((Grant.id == row.id) & Grant.revoked_at.is_null())
            .execute()
        )
        if updated:
            row.revoked_at, row.revoke_reason = now, reason
            LedgerEntry.create(
                user=row.user_id,
                action=action,
                entitlement=row.entitlement,
                source=row.source,
                reference=row.reference,
                detail={"actor": actor, "reason": reason},
            )
            metrics.entitlements_revoked.labels(source=row.source, reason=reason).inc()
            revoked.append(row)
    for user_id, entitlement in sorted({(row.user_id, row.entitlement) for row in revoked}):
        _close_gap(user_id, entitlement, now)
        wired.holding_changed(user_id, entitlement, now=now, locked_user=None, revoke_reason=reason, known=None)
    return revoked


def revoke_reference(source: str, reference: str, *, reason: str, actor: str = "system") -> list[Grant]:
    """Revoke what one payment granted, and nothing else; returns the grants revoked now."""
    with transaction():
        rows = list(Grant.select().where((Grant.source == source) & (Grant.reference == reference)))
        return _revoke(rows, reason, actor)


def revoke_payment(
    source: str,
    reference: str,
    *,
    reason: str,
    actor: str,
    detail: dict | None = None,
    user: User | None = None,
) -> list[Grant]:
    """Revoke what one payment granted and record why (`refund`, `dispute`) in the ledger; returns the grants revoked now.

    The record is made also when nothing was granted yet, so the payment never grants later.
    `user` names the payer in that case.
    """
    with transaction():
        found = find_grant(source, reference)
        payer = found.user if found is not None else user
        if payer is not None:
            # The locks `grant` takes, in its order: a grant of this payment under way finishes first, or sees this record.
            for_update(User.select(User.id).where(User.id == payer.id)).get()
        lock_payment(source, reference)
        if payer is None and (found := find_grant(source, reference)) is not None:
            payer = found.user  # granted just before the lock was ours
        revoked = revoke_reference(source, reference, reason=reason, actor=actor)
        found = find_grant(source, reference)
        record(
            found.user if found is not None else payer,
            reason,
            source=source,
            reference=reference,
            entitlement=found.entitlement if found is not None else None,
            detail={"actor": actor, "revoked": len(revoked), **(detail or {})},
        )
        if payer is not None and reason in REVERSALS:
            refunded = {"source": source, "reference": reference, "reason": REVERSALS[reason], "revoked": len(revoked)}
            hooks.wired().payment_reversed(payer, refunded, found.entitlement if found is not None else None)
    return revoked


def _payment_data(row: Grant, detail: dict | None) -> dict:
    """What a `payment.succeeded` message says about the payment, beside the user's summary."""
    paid = {key: (detail or {}).get(key) for key in ("amount", "currency") if (detail or {}).get(key) is not None}
    return {"source": row.source, "reference": row.reference, "plan": row.plan, "grant": row.id, **paid}


def reversal(source: str, reference: str) -> str | None:
    """`refund` or `dispute` when the ledger records the payment taken back in full, else None."""
    row = (
        LedgerEntry.select(LedgerEntry.action)
        .where((LedgerEntry.source == source) & (LedgerEntry.reference == reference) & LedgerEntry.action.in_(list(REVERSALS)))
        .order_by(LedgerEntry.id)
        .first()
    )
    return row.action if row is not None else None


def was_reversed(source: str, reference: str) -> bool:
    """True when the ledger records the payment refunded in full or disputed."""
    return reversal(source, reference) is not None


def find_grant(source: str, reference: str) -> Grant | None:
    """The grant made for one payment, or None."""
    return Grant.get_or_none((Grant.source == source) & (Grant.reference == reference))


def revoke_entitlement(user: User, entitlement: str, *, reason: str = "manual", actor: str = "operator") -> list[Grant]:
    """Revoke every grant of an entitlement a user holds now or later."""
    now = utcnow()
    with transaction():
        rows = list(
            Grant.select().where(
                (Grant.user == user)
                & (Grant.entitlement == entitlement)
                & Grant.revoked_at.is_null()
                & (Grant.ends_at.is_null() | (Grant.ends_at > now))
            )
        )
        return _revoke(rows, reason, actor)


def grant_manually(user: User, entitlement: str, *, days: float | None, actor: str = "operator") -> GrantResult:
    """An operator's grant, recorded in the ledger under its own reference."""
    return grant(user, entitlement, source="manual", reference=f"manual-{uuid.uuid4().hex}", days=days, actor=actor)


def record(user: User | None, action: str, *, source: str, reference: str | None, entitlement: str | None = None, detail: dict | None = None) -> None:
    """Add a line to the audit ledger (refunds, disputes and other events that are not grants)."""
    LedgerEntry.create(user=user, action=action, entitlement=entitlement, source=source, reference=reference, detail=detail)


def grant_to_dict(row: Grant, now: datetime | None = None) -> dict:
    """A grant as JSON, with whether it holds now."""
    now = now or utcnow()
    return {
        "id": row.id,
        "user": row.user.telegram_id,
        "entitlement": row.entitlement,
        "active": is_active(row, now),
        "starts_at": iso(row.starts_at),
        "expires_at": iso(row.ends_at),
        "source": row.source,
        "reference": row.reference,
        "plan": row.plan,
        "subscription_id": row.subscription_id,
        "revoked_at": iso(row.revoked_at),
        "revoke_reason": row.revoke_reason,
    }


def list_grants(telegram_id: int | None = None, limit: int | None = None) -> list[Grant]:
    """Grants, newest first, optionally for one user."""
    query = Grant.select(Grant, User).join(User).order_by(Grant.created_at.desc(), Grant.id.desc())
    if telegram_id is not None:
        query = query.where(User.telegram_id == int(telegram_id))
    if limit:
        query = query.limit(limit)
    return list(query)
