"""One reconciliation run: compare ledger entries with the inbox, record what it lacks, and keep the provider's state.

The state row of a provider holds a lease (so the workers reconcile one at a time), a cursor
(the newest ledger entry seen, so a routine run reads only what is new) and the last run's summary.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

import peewee

from app import inbox, metrics
from app.clock import iso, utcnow
from app.db import transaction
from app.models import Event, ReconcileState
from app.text import visible

log = logging.getLogger(__name__)

PROVIDERS = ("telegram", "stripe")


class Action:
    """What a run did with one ledger entry."""

    KNOWN = "known"  # the inbox has it already (the webhook delivered it, or an earlier run recorded it)
    RECORDED = "recorded"
    WOULD_RECORD = "would record"  # --dry-run
    LISTED = "listed"  # not something this service grants or revokes (gifts, ads, withdrawals…)
    MALFORMED = "malformed"  # not in the shape its door accepts: reported and skipped, the run goes on


@dataclass(frozen=True)
class Entry:
    """One entry of a provider's ledger, as the inbox would record it (`type` None: never recorded)."""

    external_id: str
    kind: str
    at: datetime
    ledger_id: str
    type: str | None = None
    payload: dict | None = None
    summary: str = ""
    problem: str | None = None  # why the entry is malformed (never recorded), or None

    @property
    def recordable(self) -> bool:
        """True for what the inbox takes: payments, refunds, handled event types."""
        return self.type is not None and self.problem is None


def malformed(ledger_id: object, problem: str, at: datetime | None = None) -> Entry:
    """A ledger entry the service cannot read: reported (with what is wrong) and skipped."""
    shown = visible(str(ledger_id if ledger_id is not None else ""))[:120]
    return Entry(shown, Action.MALFORMED, at or datetime.min, shown, summary=visible(problem)[:300], problem=problem)


@dataclass
class Report:
    """What a run found: one row per ledger entry, the counts, and how many API calls it took."""

    provider: str
    dry_run: bool
    rows: list[dict] = field(default_factory=list)
    calls: int = 0
    since: datetime | None = None
    newest: tuple[datetime, str] | None = None
    recorded_ids: list[int] = field(default_factory=list)
    started_at: datetime = field(default_factory=utcnow)
    ledger_read_to: int | None = None  # a chronological ledger's length when read (a routine run resumes there)

    def count(self, action: str) -> int:
        """How many rows took this action."""
        return sum(1 for row in self.rows if row["action"] == action)

    def summary(self) -> dict:
        """The counts, as shown by `entitle status` and stored with the run."""
        return {
            "found": len(self.rows),
            "known": self.count(Action.KNOWN),
            "recorded": self.count(Action.RECORDED),
            "would_record": self.count(Action.WOULD_RECORD),
            "listed": self.count(Action.LISTED),
            "malformed": self.count(Action.MALFORMED),
            "calls": self.calls,
            "since": iso(self.since),
            "recorded_ids": [row["external_id"] for row in self.rows if row["action"] == Action.RECORDED][:20],
            "ledger_read_to": self.ledger_read_to,
        }


NOTE = "recorded by reconciliation: found in {ledger}, never delivered by the webhook"

KnownIds = Callable[[list[Entry]], set[str]]


def known_in_inbox(provider: str, external_ids: Iterable[str]) -> set[str]:
    """Which of these external ids the inbox holds for this provider."""
    ids = list(dict.fromkeys(external_ids))
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        query = Event.select(Event.external_id).where((Event.provider == provider) & Event.external_id.in_(chunk))
        found.update(row.external_id for row in query)
    return found


def apply(report: Report, entries: list[Entry], known: KnownIds, *, ledger: str) -> Report:
    """Compare entries (oldest first) with the inbox and, unless a dry run, record those it lacks."""
    already = known([e for e in entries if e.recordable])
    for entry in entries:
        if entry.problem is not None:
            log.warning("%s ledger entry %s skipped: %s", report.provider, entry.external_id, entry.summary)
            report.rows.append({"external_id": entry.external_id, "kind": Action.MALFORMED, "action": Action.MALFORMED,
                                "at": iso(entry.at) if entry.at != datetime.min else None, "summary": entry.summary})
            continue
        if report.newest is None or (entry.at, entry.ledger_id) > report.newest:
            report.newest = (entry.at, entry.ledger_id)
        if not entry.recordable:
            action = Action.LISTED
        elif entry.external_id in already:
            action = Action.KNOWN
        elif report.dry_run:
            action = Action.WOULD_RECORD
        else:
            action = _record(report, entry, ledger)
            already.add(entry.external_id)
        report.rows.append(
            {"external_id": entry.external_id, "kind": entry.kind, "action": action, "at": iso(entry.at), "summary": entry.summary}
        )
    return report


def _subject(provider: str, payload: dict) -> int | None:
    """The Telegram user a reconciled entry is about, read as the webhook's route reads it."""
    if provider == "telegram":
        from app.telegram.shapes import subject_of

        return subject_of(payload)
    from app.stripe.customers import event_subject

    return event_subject(payload)


def _record(report: Report, entry: Entry, ledger: str) -> str:
    recorded = inbox.record(report.provider, entry.external_id, entry.type, entry.payload, note=NOTE.format(ledger=ledger),
                            subject=_subject(report.provider, entry.payload))
    if not recorded.created:
        return Action.KNOWN  # the webhook delivered it a moment ago
    metrics.reconcile_found.labels(provider=report.provider, kind=entry.kind).inc()
    log.info("reconciliation recorded %s %s %s (event %s)", report.provider, entry.kind, entry.external_id, recorded.event.id)
    if recorded.should_enqueue:
        report.recorded_ids.append(recorded.event.id)
    return Action.RECORDED


# -- the state of each provider ------------------------------------------------------------


def _ensure_row(provider: str) -> None:
    if ReconcileState.get_or_none(ReconcileState.provider == provider) is None:
        try:
            with transaction():
                ReconcileState.create(provider=provider)
        except peewee.IntegrityError:
            pass  # another worker created it


def cursor(provider: str) -> tuple[datetime, str] | None:
    """The newest ledger entry an earlier run saw, or None."""
    row = ReconcileState.get_or_none(ReconcileState.provider == provider)
    if row is None or row.cursor_at is None:
        return None
    return row.cursor_at, row.cursor_id or ""


def ledger_read_to(provider: str) -> int | None:
    """How far the last run read the provider's chronological ledger (from its stored summary), or None."""
    row = ReconcileState.get_or_none(ReconcileState.provider == provider)
    value = (row.last_summary or {}).get("ledger_read_to") if row is not None and isinstance(row.last_summary, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def claim(provider: str, holder: str, *, interval: float, lease: float) -> bool:
    """Take the provider's lease if its last run is `interval` seconds old and no one holds it; True when taken.

    One conditional UPDATE, so of several workers asking at once exactly one gets it.
    """
    _ensure_row(provider)
    now = utcnow()
    free = ReconcileState.lease_until.is_null() | (ReconcileState.lease_until < now)
    due = ReconcileState.last_finished_at.is_null() | (ReconcileState.last_finished_at <= now - timedelta(seconds=interval))
    with transaction():
        taken = (
            ReconcileState.update(lease_until=now + timedelta(seconds=lease), lease_holder=holder, last_started_at=now)
            .where((ReconcileState.provider == provider) & free & due)
            .execute()
        )
    return bool(taken)


def finish(provider: str, *, report: Report | None = None, error: str | None = None, holder: str | None = None) -> None:
    """Store a run's outcome and move the cursor forward; with `holder`, release that holder's lease."""
    _ensure_row(provider)
    now = utcnow()
    changes: dict = {"last_finished_at": now, "last_error": error}
    if report is not None:
        changes["last_summary"] = report.summary()
        current = cursor(provider)
        if report.newest is not None and (current is None or report.newest > current):
            changes["cursor_at"], changes["cursor_id"] = report.newest
    if holder is not None:
        changes.update(lease_until=None, lease_holder=None)
    else:
        changes["last_started_at"] = report.started_at if report is not None else now
    condition = ReconcileState.provider == provider
    if holder is not None:
        condition &= ReconcileState.lease_holder == holder
    with transaction():
        ReconcileState.update(**changes).where(condition).execute()


def last_runs() -> dict[str, dict]:
    """Each provider's last run: when, what it found and recorded, and any error."""
    rows = {row.provider: row for row in ReconcileState.select()}
    result = {}
    for provider in PROVIDERS:
        row = rows.get(provider)
        if row is None or row.last_finished_at is None:
            result[provider] = {"last_run": None}
            continue
        result[provider] = {
            "last_run": iso(row.last_finished_at),
            "started": iso(row.last_started_at),
            "error": row.last_error,
            "cursor": iso(row.cursor_at),
            **(row.last_summary or {}),
        }
    return result
