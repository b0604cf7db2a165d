"""The periodic job: end every run of grants whose end has passed, and queue the reminders that are due, each once."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from app import inbox, subscriptions
from app.access import transitions
from app.access.transitions import PROVIDER
from app.clock import iso, utcnow
from app.db import transaction
from app.models import EntitlementState, Grant, Reminder, User

log = logging.getLogger(__name__)

BATCH = 500


HandOff = Callable[[int], object]


def _give(hand_off: HandOff | None, event_ids: list[int]) -> None:
    # Without a hand-off (a bare call) the sweeper takes the rows within SWEEP_AFTER.
    for event_id in event_ids if hand_off is not None else ():
        hand_off(event_id)


def expire_due(now: datetime | None = None, *, hand_off: HandOff | None = None) -> int:
    """Write the `ended` (expired) transition of every holder whose end has passed; returns how many ended here.

    Several workers may run this at once: `sync` locks the user and decides on the state row's
    version, so each expiry is ended by exactly one of them.
    """
    now = now or utcnow()
    due = list(
        EntitlementState.select()
        .where(EntitlementState.holding & EntitlementState.ends_at.is_null(False) & (EntitlementState.ends_at <= now))
        .order_by(EntitlementState.ends_at)
        .limit(BATCH)
    )
    ended = 0
    for state in due:
        with transitions.collecting_hand_offs() as event_ids:
            try:
                with transaction():
                    written = transitions.sync(state.user_id, state.entitlement, reason="expired", now=now)
            except transitions.StateMoved:
                continue  # another worker ended it a moment ago
        ended += sum(1 for row in written if row.kind == transitions.ENDED)
        _give(hand_off, event_ids)
    if ended:
        log.info("ended %d expired entitlement(s)", ended)
    return ended


def ending_subscription(user_id: int, entitlement: str, end: datetime) -> tuple[bool, object | None]:
    """(whether a subscription's grant makes the end, that subscription's record if it has one)."""
    last = Grant.get_or_none(
        (Grant.user == user_id) & (Grant.entitlement == entitlement) & Grant.revoked_at.is_null() & (Grant.ends_at == end)
    )
    if last is None or last.subscription_id is None:
        return False, None
    return True, subscriptions.find(last.subscription_id)


def auto_renews(user_id: int, entitlement: str, end: datetime) -> bool:
    """True when the grant that makes the end is a subscription's that renews by itself (not canceled, not past due)."""
    by_subscription, record = ending_subscription(user_id, entitlement, end)
    return by_subscription and (record is None or subscriptions.renews(record))


def queue_due_reminders(now: datetime | None = None, *, hand_off: HandOff | None = None) -> int:
    """Turn each due reminder into one `reminder` inbox event, unless the end moved or a subscription renews it; returns how many."""
    now = now or utcnow()
    due = list(Reminder.select().where((Reminder.status == "pending") & (Reminder.due_at <= now)).order_by(Reminder.due_at).limit(BATCH))
    queued = []
    for row in due:
        with transaction():
            # The conditional update decides which worker takes it.
            if not Reminder.update(status="queued").where((Reminder.id == row.id) & (Reminder.status == "pending")).execute():
                continue
            state = EntitlementState.get_or_none((EntitlementState.user == row.user_id) & (EntitlementState.entitlement == row.entitlement))
            if state is None or not state.holding or state.ends_at != row.ends_at or auto_renews(row.user_id, row.entitlement, row.ends_at):
                Reminder.update(status="skipped").where(Reminder.id == row.id).execute()
                continue
            user = User.get_by_id(row.user_id)
            payload = {"reminder": row.id, "user": user.telegram_id, "entitlement": row.entitlement, "ends_at": iso(row.ends_at), "days": row.days}
            recorded = inbox.record(PROVIDER, f"reminder:{row.id}", "reminder", payload, subject=user.telegram_id)
        if recorded.should_enqueue:
            queued.append(recorded.event.id)
    _give(hand_off, queued)
    return len(queued)


def run_once(now: datetime | None = None, *, hand_off: HandOff | None = None) -> tuple[int, int]:
    """One pass of the job: (expiries ended, reminders queued); the events it records go to `hand_off`.

    Subscriptions whose paid period or grace ran out are marked ended after their entitlements.
    """
    from app.access import join_queries

    now = now or utcnow()
    ended = expire_due(now, hand_off=hand_off)
    subscriptions.lapse_due(now)
    reminded = queue_due_reminders(now, hand_off=hand_off)
    join_queries.queue_unpaid(now, hand_off)
    return ended, reminded
