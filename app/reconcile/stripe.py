"""Reconcile with Stripe's ledger, `GET /v1/events` (Stripe keeps 30 days of events).

Events of the types the service handles are listed newest first (`created[gte]`, `types[]`,
paged with `starting_after` while `has_more`); each the inbox lacks is recorded under its event
id, type and body, exactly as the webhook records it, and is then processed as if delivered.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

from app.clock import from_timestamp, utcnow
from app.metrics import STRIPE_EVENT_TYPES
from app.reconcile.runs import Entry, Report, apply, known_in_inbox, malformed
from app.stripe import SOURCE
from app.stripe.signature import event_shape_problem

PAGE_SIZE = 100  # the most one list call returns
LEDGER = "Stripe's event list"
HANDLED_TYPES = tuple(sorted(STRIPE_EVENT_TYPES - {"unverified"}))
CURSOR_OVERLAP = timedelta(minutes=10)
MAX_EXTERNAL_ID = 255  # the inbox's external id column
MAX_TIMESTAMP = 2**32

Progress = Callable[[int, int], None]


def read_events(client, since: datetime, report: Report, progress: Progress | None = None) -> list[dict]:
    """Every event of a handled type created at `since` or later, newest first, as plain JSON."""
    params = {"created": {"gte": int(since.replace(tzinfo=timezone.utc).timestamp())}, "types": list(HANDLED_TYPES), "limit": PAGE_SIZE}
    found: list[dict] = []
    while True:
        page = client.v1.events.list(params=params)
        report.calls += 1
        found += [event.to_dict(for_json=True) for event in page.data]
        if progress is not None:
            progress(len(found), report.calls)
        if not page.has_more or not page.data:
            return found
        params = {**params, "starting_after": page.data[-1].id}


def _summary(event: dict) -> str:
    obj = (event.get("data") or {}).get("object") or {}
    return str(obj.get("id") or "")


def _created(event: object) -> datetime | None:
    value = event.get("created") if isinstance(event, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_TIMESTAMP:
        return None
    return from_timestamp(value)


def _order(event: object) -> tuple:
    at = _created(event)
    return (at is not None, at or datetime.min, str(event.get("id", "")) if isinstance(event, dict) else "")


def entries(events: list[dict]) -> list[Entry]:
    """The events as ledger entries, oldest first; one the webhook door would refuse is reported as malformed and skipped."""
    result = []
    for event in sorted(events, key=_order):
        at = _created(event)
        event_id = event.get("id") if isinstance(event, dict) else None
        problem = event_shape_problem(event) or (None if at is not None else "`created` is not a Unix time")
        if problem is None and not 0 < len(event_id) <= MAX_EXTERNAL_ID:
            problem = f"`id` is not 1 to {MAX_EXTERNAL_ID} characters long"
        if problem is not None:
            result.append(malformed(event_id, f"event {problem}", at))
            continue
        type_ = event["type"]
        recordable = type_ in HANDLED_TYPES
        result.append(Entry(event_id, type_, at, event_id, type_ if recordable else None, event if recordable else None, _summary(event)))
    return result


def known(found: list[Entry]) -> set[str]:
    """Event ids the inbox already holds."""
    return known_in_inbox(SOURCE, [e.external_id for e in found])


def window_start(days: int, cursor: tuple[datetime, str] | None) -> datetime:
    """Where a run starts reading: `days` back, or just before the cursor when that is later."""
    start = utcnow() - timedelta(days=days)
    if cursor is not None:
        start = max(start, cursor[0] - CURSOR_OVERLAP)
    return start


def reconcile(client, *, days: int = 30, dry_run: bool = False, cursor: tuple[datetime, str] | None = None,
              progress: Progress | None = None) -> Report:
    """Read the handled events of the last `days` (or since the cursor) and record what the inbox lacks."""
    report = Report(SOURCE, dry_run)
    report.since = window_start(days, cursor)
    return apply(report, entries(read_events(client, report.since, report, progress)), known, ledger=LEDGER)
