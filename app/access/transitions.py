"""Entitlement transitions: a holder starts, has extended, or stops holding an entitlement.

`sync` runs inside every transaction that changes grants (grant, revoke, the expiry job). It
compares the holder's end as `EntitlementState` last recorded it with the end the grants give
now, writes at most one transition per change with the user's next `sequence`, and records
inbox events for the transition's consumers (chat invites and removals) and reminder rows, all
in that same transaction. The events are handed to the broker after the commit; one whose
hand-off never happened is taken by the sweeper.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

import peewee

from app import inbox, metrics
from app.clock import iso, utcnow
from app.db import database, for_update, transaction
from app.access import rules
from app.holdings import Known, current_end
from app.holdings import lapse_reason as holdings_lapse_reason
from app.models import EntitlementState, EntitlementTransition, Grant, Reminder, User
from app.plans import Catalogue

log = logging.getLogger(__name__)

PROVIDER = "access"
STARTED, EXTENDED, ENDED = "started", "extended", "ended"
# How a revocation's reason is named on the transition; anything else an operator did is `revoked`.
END_REASONS = {"refund": "refunded", "dispute": "disputed", "manual": "revoked", "canceled": "canceled", "expired": "expired"}


def end_reason(revoke_reason: str) -> str:
    """The transition reason for a grant revoked with `revoke_reason`."""
    return END_REASONS.get(revoke_reason, "revoked")


def _held_end(user_id: int, entitlement: str, now: datetime) -> tuple[bool, datetime | None]:
    """(holds now, end) from the grants; a lifetime hold has end None."""
    end = current_end(user_id, entitlement, now)
    if end is None:
        return False, None
    return True, (None if end == datetime.max else end)


def _lapse_reason(user_id: int, entitlement: str, end: datetime | None) -> str:
    """`canceled` when the run that lapsed was a canceled subscription's, else `expired`."""
    return holdings_lapse_reason(user_id, entitlement, end)


def _catalogue() -> Catalogue | None:
    """The catalogue of the unit of work (see `rules`); None when the caller set none."""
    return rules.current()


def sync(
    user_id: int, entitlement: str, *, reason: str = "revoked", now: datetime | None = None, locked_user: User | None = None,
    known: Known | None = None,
) -> list[EntitlementTransition]:
    """Write the transitions that the grants' change implies (inside the caller's transaction); returns them.

    `locked_user`: the user row, already locked by the caller's transaction (a grant takes that lock).
    `known`: what the caller read under that lock (state, holding, last sequence), so nothing is read again.
    """
    # Inside a caller's transaction no savepoint of its own: a failure here must undo the grant change too.
    with transaction() if not database.in_transaction() else contextlib.nullcontext():
        user = locked_user or for_update(User.select().where(User.id == user_id)).get()
        if known is not None and locked_user is not None and now is not None:
            state, (holds, end) = known.state, (known.holds, known.end)
            sequence = _Sequence(user_id, known.last_sequence)
            source = known.source
            if state is None:
                state = EntitlementState(user=user_id, entitlement=entitlement, holding=False, ends_at=None, version=0)
        else:
            state = for_update(
                EntitlementState.select().where(
                    (EntitlementState.user == user_id) & (EntitlementState.entitlement == entitlement)
                )
            ).first()
            # The time once the locks are ours: a caller's `now` from before them (the expiry job's pass)
            # could predate a renewal committed meanwhile and end what that renewal just extended.
            now = max(now, utcnow()) if now is not None else utcnow()
            if state is None:
                state = _new_state(user_id, entitlement, now)
            holds, end = _held_end(user_id, entitlement, now)
            sequence = _Sequence(user_id)
            source = None
        written = []
        was_holding, previous_end = state.holding, state.ends_at
        if was_holding and previous_end is not None and previous_end <= now and (not holds or end != previous_end):
            # The run lapsed before the expiry job saw it: it ended then, whatever happens now.
            written.append(_write(user, entitlement, ENDED, _lapse_reason(user_id, entitlement, previous_end), None, previous_end, now,
                                  sequence, source))
            was_holding = False
        if not was_holding and holds:
            written.append(_write(user, entitlement, STARTED, None, end, None, now, sequence, source))
        elif was_holding and holds and end != previous_end:
            written.append(_write(user, entitlement, EXTENDED, None, end, previous_end, now, sequence, source))
        elif was_holding and not holds:
            written.append(_write(user, entitlement, ENDED, reason, None, previous_end, now, sequence, source))
        if written or (state.holding, state.ends_at) != (holds, end):
            _save_state(state, holds, end, now)
    return written


def _new_state(user_id: int, entitlement: str, now: datetime) -> EntitlementState:
    try:
        with transaction():
            return EntitlementState.create(user=user_id, entitlement=entitlement, holding=False, ends_at=None, updated_at=now)
    except peewee.IntegrityError:
        return EntitlementState.get((EntitlementState.user == user_id) & (EntitlementState.entitlement == entitlement))


class StateMoved(Exception):
    """The holder's state changed under this transaction; it is rolled back and tried again."""


def _save_state(state: EntitlementState, holds: bool, end: datetime | None, now: datetime) -> None:
    if state.id is None:  # first seen by a grant that read it under the user's lock: no one else can create it
        EntitlementState.insert(
            user=state.user_id, entitlement=state.entitlement, holding=holds, ends_at=end, version=1, updated_at=now
        ).execute()
        return
    changed = (
        EntitlementState.update(holding=holds, ends_at=end, version=EntitlementState.version + 1, updated_at=now)
        .where((EntitlementState.id == state.id) & (EntitlementState.version == state.version))
        .execute()
    )
    if not changed:
        raise StateMoved(f"the state of user {state.user_id}'s {state.entitlement} changed meanwhile")


class _Sequence:
    """A user's transition sequence numbers: the next one, read once (or known) and counted on from there."""

    def __init__(self, user_id: int, last: int | None = None):
        self.user_id, self.last = user_id, last

    def next(self) -> int:
        if self.last is None:
            self.last = EntitlementTransition.select(peewee.fn.MAX(EntitlementTransition.sequence)).where(
                EntitlementTransition.user == self.user_id
            ).scalar() or 0
        self.last += 1
        return self.last


def _write(
    user: User, entitlement: str, kind: str, reason: str | None, end: datetime | None, previous_end: datetime | None,
    now: datetime, sequence: _Sequence, source: str | None = None,
) -> EntitlementTransition:
    row = EntitlementTransition.create(
        user=user.id, entitlement=entitlement, kind=kind, reason=reason, ends_at=end, previous_end=previous_end,
        sequence=sequence.next(), at=now,
    )
    metrics.entitlement_transitions.labels(kind=kind).inc()
    _announce(row, user, source)
    catalogue = _catalogue()
    spec = catalogue.entitlement(entitlement) if catalogue is not None else None
    if catalogue is None or (spec is not None and spec.remind_days):
        skip_stale_reminders(user.id, entitlement, None if kind == ENDED else end)
    if catalogue is None:
        # No catalogue here: a worker, which has one, takes the transition to its consumers.
        hand_off_after_commit([i for i in [_event(f"t{row.id}", "transition", row, user)] if i is not None])
    elif spec is not None:
        record_consumers(row, user, spec, now)
    return row


def _announce(row: EntitlementTransition, user: User, source: str | None = None) -> None:
    """The operator's backend hears of the transition in this same transaction (`entitlement.started|extended|ended`).

    `source`: the source of the grant that changed last, when the change knows it (a grant's own); else it is read.
    """
    from app.webhooks import outbox

    source = source if source is not None else _latest_source(user.id, row.entitlement)
    data = {"transition": row.id, "previous_expires_at": iso(row.previous_end), "source": source}
    if row.kind == ENDED:
        data["reason"] = row.reason
    outbox.emit(f"entitlement.{row.kind}", user, data, entitlement=row.entitlement)


def _latest_source(user_id: int, entitlement: str) -> str | None:
    """The source of the grant that changed last (`telegram`, `stripe`, `trial`, `promo`, `gift`, `manual`, …)."""
    latest = (
        Grant.select(Grant.source).where((Grant.user == user_id) & (Grant.entitlement == entitlement))
        .order_by(Grant.created_at.desc(), Grant.id.desc()).first()
    )
    return latest.source if latest is not None else None


def record_consumers(row: EntitlementTransition, user: User, spec, now: datetime) -> None:
    """Inbox events for what this transition must do in Telegram, and the reminders of its new end."""
    ids = []
    if row.kind == STARTED:
        ids += [_event(f"t{row.id}:invite:{chat}", "chat_invite", row, user, chat=chat) for chat in spec.chats]
    elif row.kind == ENDED:
        ids += [_event(f"t{row.id}:remove:{chat}", "chat_remove", row, user, chat=chat) for chat in spec.chats]
    if spec.emoji_status:
        ids.append(_event(f"t{row.id}:emoji", "emoji_status", row, user))
    if row.kind != ENDED and row.ends_at is not None:
        for days in spec.remind_days:
            due = row.ends_at - timedelta(days=days)
            if due > now:
                _reminder(user.id, row.entitlement, row.ends_at, days, due)
    hand_off_after_commit([i for i in ids if i is not None])


def _event(external_id: str, type_: str, row: EntitlementTransition, user: User, **extra) -> int | None:
    payload = {
        "transition": row.id, "sequence": row.sequence, "kind": row.kind, "reason": row.reason,
        "user": user.telegram_id, "entitlement": row.entitlement, "ends_at": iso(row.ends_at), **extra,
    }
    recorded = inbox.record(PROVIDER, external_id, type_, payload, subject=user.telegram_id)
    return recorded.event.id if recorded.should_enqueue else None


def _reminder(user_id: int, entitlement: str, ends_at: datetime, days: int, due: datetime) -> None:
    try:
        with transaction():
            Reminder.create(user=user_id, entitlement=entitlement, ends_at=ends_at, days=days, due_at=due)
    except peewee.IntegrityError:
        pass  # once per (user, entitlement, end, day)


def skip_stale_reminders(user_id: int, entitlement: str, end: datetime | None) -> None:
    """Reminders of an end that is no longer the end are never sent."""
    query = Reminder.update(status="skipped").where(
        (Reminder.user == user_id) & (Reminder.entitlement == entitlement) & (Reminder.status == "pending")
    )
    if end is not None:
        query = query.where(Reminder.ends_at != end)
    query.execute()


# Where recorded events wait for their unit of work to commit: the inbox's, re-exported for the callers here.
collecting_hand_offs = inbox.collecting_hand_offs
hand_off_after_commit = inbox.hand_off_after_commit


def backfill_states() -> None:
    """A state row for every holder that has none, from what the grants give now (no transition is written)."""
    now = utcnow()
    pairs = (
        Grant.select(Grant.user, Grant.entitlement)
        .where(Grant.revoked_at.is_null() & (Grant.ends_at.is_null() | (Grant.ends_at > now)))
        .distinct()
        .tuples()
    )
    for user_id, entitlement in list(pairs):
        holds, end = _held_end(user_id, entitlement, now)
        if holds:
            try:
                with transaction():
                    EntitlementState.create(user=user_id, entitlement=entitlement, holding=True, ends_at=end, updated_at=now)
            except peewee.IntegrityError:
                pass


def holds(user_id: int, entitlement: str, now: datetime | None = None) -> bool:
    """True when the user holds the entitlement now, by the grants."""
    return _held_end(user_id, entitlement, now or utcnow())[0]


def list_transitions(user_id: int | None = None) -> list[EntitlementTransition]:
    """Transitions in the order they were written, optionally for one user."""
    query = EntitlementTransition.select().order_by(EntitlementTransition.id)
    if user_id is not None:
        query = query.where(EntitlementTransition.user == user_id)
    return list(query)
