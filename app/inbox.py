"""The event inbox: every accepted webhook is a row, processed once by its provider's handler."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable

import peewee

from app import metrics
from app.clock import utcnow
from app.db import for_update, transaction
from app.models import Event, EventLog, EventStatus
from app.redact import redact

log = logging.getLogger(__name__)

Handler = Callable[[Event], object]


@dataclass(frozen=True)
class _Spec:
    fn: Handler
    transactional: bool
    prepare: Callable[[Event], object] | None = None


_handlers: dict[tuple[str, str], _Spec] = {}
_effects = threading.local()


class Ignore(Exception):
    """Raised by a handler that has nothing to do for this event; the row is marked ignored."""


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help; the row is marked failed at once."""


def handles(
    provider: str, *types: str, transactional: bool = True, prepare: Callable[[Event], object] | None = None
) -> Callable[[Handler], Handler]:
    """Register a function as the handler of these event types of a provider.

    `prepare(event)` runs first, outside the transaction, for reads from other services
    (fetch the current subscription); the handler is then called as `handler(event, prepared)`
    and its writes commit with the row's `processed` mark. `transactional=False` is for
    handlers that only call other services (send a message): they run outside the database
    transaction, so a slow API never holds a write lock.
    """

    if prepare is not None and not transactional:
        raise ValueError("prepare= is for transactional handlers; a non-transactional one can read what it needs itself")

    def register(fn: Handler) -> Handler:
        for type_ in types:
            _handlers[(provider, type_)] = _Spec(fn, transactional, prepare)
        return fn

    return register


def unregister(provider: str, *types: str) -> None:
    """Forget the handlers of these event types."""
    for type_ in types:
        _handlers.pop((provider, type_), None)


def _log(event_id: int, action: str, detail: str | None = None) -> None:
    EventLog.create(event=event_id, action=action, detail=detail)


@dataclass(frozen=True)
class Recorded:
    """The inbox row of a delivery, whether this call created it, and whether it must be queued."""

    event: Event
    created: bool
    should_enqueue: bool


def record(provider: str, external_id: str, type_: str, payload: dict, *, status: str = EventStatus.PENDING, note: str | None = None) -> Recorded:
    """Store an accepted delivery once per (provider, external id).

    A duplicate of a pending or failed event is queued again; a duplicate of a
    processed or ignored one changes nothing.
    """
    external_id = str(external_id)
    # The common case is one INSERT in one short transaction; the row's own timestamps are its
    # first history line, so only a note needs a log row.
    try:
        with transaction():
            done_at = utcnow() if status == EventStatus.IGNORED else None
            event = Event.create(
                provider=provider, external_id=external_id, type=type_, payload=payload, status=status, processed_at=done_at
            )
            if note:
                _log(event.id, "received", note)
        return Recorded(event, True, status == EventStatus.PENDING)
    except peewee.IntegrityError:
        pass
    with transaction():
        event = for_update(Event.select().where((Event.provider == provider) & (Event.external_id == external_id))).get()
        if event.status in EventStatus.DONE:
            _log(event.id, "duplicate", f"already {event.status}; nothing to do")
            return Recorded(event, False, False)
        if event.status == EventStatus.FAILED:
            Event.update(status=EventStatus.PENDING, updated_at=utcnow()).where(Event.id == event.id).execute()
            event.status = EventStatus.PENDING
            _log(event.id, "duplicate", "was failed; queued again")
        else:
            _log(event.id, "duplicate", "still pending; queued again")
        return Recorded(event, False, True)


def log_enqueued(event_id: int, ok: bool, detail: str | None = None) -> None:
    """Note in the event's history whether handing it to the broker worked."""
    with transaction():
        _log(event_id, "enqueued" if ok else "enqueue_failed", detail)


def describe_error(exc: BaseException) -> str:
    """One line naming an exception, short enough to store, with secrets hidden."""
    text = redact(f"{type(exc).__name__}: {exc}".strip())
    return text[:2000]


def after_commit(effect: Callable[[], object]) -> None:
    """From inside a handler: run `effect` once the handler's writes are committed (e.g. send a message).

    Effects run at most once, after the commit; one that fails is logged, so a handler that
    needs delivery guarantees records its own follow-up event instead.
    """
    pending = getattr(_effects, "pending", None)
    if pending is None:
        raise RuntimeError("after_commit() is only available inside an inbox handler")
    pending.append(effect)


def _run_effects(effects: list[Callable[[], object]]) -> None:
    for effect in effects:
        try:
            effect()
        except Exception:
            log.exception("an after-commit effect failed")


def _run_handler(handler: Handler, event: Event, *prepared: object) -> tuple[str, str | None]:
    try:
        handler(event, *prepared)
    except Ignore as reason:
        return EventStatus.IGNORED, str(reason) or None
    return EventStatus.PROCESSED, None


LEASE = timedelta(seconds=60)


def _take_lease(event_id: int) -> bool:
    """Claim an event for a non-transactional handler; False when it is done or another worker holds it."""
    with transaction():
        event = for_update(Event.select().where(Event.id == event_id)).get()
        now = utcnow()
        if event.status in EventStatus.DONE or (event.lease_until is not None and event.lease_until > now):
            return False
        Event.update(lease_until=now + LEASE, updated_at=now).where(Event.id == event_id).execute()
        return True


def process(event_id: int, *, final_attempt: bool) -> str:
    """Run an event's handler and record the outcome; returns the event's status afterwards.

    The handler's writes and the row's `processed` mark commit together; a handler
    registered with `transactional=False` (network calls only) runs before that transaction.
    A failure is recorded (error, attempts) and re-raised so the broker retries, unless this
    was the final attempt or the handler says retrying cannot help, when the row is `failed`.
    """
    event = Event.get_or_none(Event.id == event_id)
    if event is None:
        log.warning("event %s does not exist; dropping the message", event_id)
        return "missing"
    if event.status in EventStatus.DONE:
        return event.status
    provider = event.provider
    spec = _handlers.get((provider, event.type))
    started = time.perf_counter()
    _effects.pending = []
    try:
        outcome, prepared = None, ()
        if spec is not None and spec.prepare is not None:
            try:
                prepared = (spec.prepare(event),)
            except Ignore as reason:
                outcome = EventStatus.IGNORED, str(reason) or None
        if spec is not None and not spec.transactional:
            if not _take_lease(event_id):
                return EventStatus.PENDING
            outcome = _run_handler(spec.fn, event)
        with transaction():
            event = for_update(Event.select().where(Event.id == event_id)).get()
            if event.status in EventStatus.DONE:
                return event.status
            if spec is None:
                status, detail = EventStatus.IGNORED, f"no handler for {provider} {event.type}"
            elif outcome is not None:
                status, detail = outcome
            else:
                with transaction():
                    status, detail = _run_handler(spec.fn, event, *prepared)
            now = utcnow()
            Event.update(
                status=status, attempts=Event.attempts + 1, processed_at=now, updated_at=now, lease_until=None,
                error=detail if status == EventStatus.IGNORED else None,
            ).where(Event.id == event_id).execute()
    except Exception as exc:
        permanent = isinstance(exc, PermanentError)
        status = EventStatus.FAILED if (final_attempt or permanent) else EventStatus.PENDING
        with transaction():
            Event.update(
                status=status, attempts=Event.attempts + 1, error=describe_error(exc), updated_at=utcnow(), lease_until=None
            ).where(Event.id == event_id).execute()
            _log(event_id, "failed" if status == EventStatus.FAILED else "attempt_failed", describe_error(exc))
        metrics.events_processed.labels(provider=provider, result="failed" if status == EventStatus.FAILED else "retry").inc()
        metrics.event_processing_seconds.labels(provider=provider).observe(time.perf_counter() - started)
        raise
    finally:
        effects, _effects.pending = _effects.pending, None
    _run_effects(effects)
    metrics.events_processed.labels(provider=provider, result=status).inc()
    metrics.event_processing_seconds.labels(provider=provider).observe(time.perf_counter() - started)
    return status


def mark_for_replay(event_ids: Iterable[int]) -> list[int]:
    """Set events back to pending so they run again; returns the ids that exist."""
    found = []
    with transaction():
        for event_id in event_ids:
            updated = Event.update(status=EventStatus.PENDING, updated_at=utcnow()).where(Event.id == event_id).execute()
            if updated:
                _log(event_id, "replayed", "queued again by an operator")
                found.append(event_id)
    return found


def failed_ids(provider: str | None = None) -> list[int]:
    """Ids of every failed event, oldest first."""
    query = Event.select(Event.id).where(Event.status == EventStatus.FAILED)
    if provider:
        query = query.where(Event.provider == provider)
    return [row.id for row in query.order_by(Event.id)]


def stale_pending(*, older_than: float, retry_grace: float, lost_after: float, limit: int = 1000) -> list[int]:
    """Pending events nobody is working on.

    Those whose hand-off to the broker failed (after `older_than` seconds), those last tried
    longer ago than the longest retry backoff, and any pending for `lost_after` seconds (a
    message lost with a killed worker). Rows merely waiting in a long queue are left alone,
    so a backlog is not queued twice. `lost_after=0` takes every pending row (after a restart
    of the in-process broker, whose queue died with it).
    """
    now = utcnow()
    fresh_cutoff = now - timedelta(seconds=older_than)
    handoff_failed = peewee.fn.EXISTS(
        EventLog.select(EventLog.id).where(
            (EventLog.event == Event.id) & (EventLog.action == "enqueue_failed") & (EventLog.at >= Event.updated_at)
        )
    )
    query = (
        Event.select(Event.id)
        .where(
            (Event.status == EventStatus.PENDING)
            & (
                ((Event.updated_at < fresh_cutoff) & handoff_failed)
                | (Event.updated_at < now - timedelta(seconds=older_than + retry_grace))
                | (Event.updated_at <= now - timedelta(seconds=lost_after))
            )
        )
        .order_by(Event.id)
        .limit(limit)
    )
    return [row.id for row in query]


def touch(event_ids: Iterable[int]) -> None:
    """Mark events as just handed to the broker, so the sweeper leaves them alone for a while."""
    ids = list(event_ids)
    if ids:
        with transaction():
            Event.update(updated_at=utcnow()).where(Event.id.in_(ids)).execute()


def list_events(*, provider: str | None = None, status: str | None = None, limit: int = 50) -> list[Event]:
    """Events, newest first, filtered by provider and status."""
    query = Event.select()
    if provider:
        query = query.where(Event.provider == provider)
    if status:
        query = query.where(Event.status == status)
    return list(query.order_by(Event.id.desc()).limit(limit))


def counts() -> dict[str, int]:
    """How many events are in each status."""
    rows = Event.select(Event.status, peewee.fn.COUNT(Event.id).alias("n")).group_by(Event.status)
    result = {status: 0 for status in EventStatus.ALL}
    result.update({row.status: row.n for row in rows})
    return result


def event_to_dict(event: Event, *, with_payload: bool = False) -> dict:
    """An event as JSON."""
    from app.clock import iso

    data = {
        "id": event.id,
        "provider": event.provider,
        "type": event.type,
        "external_id": event.external_id,
        "status": event.status,
        "attempts": event.attempts,
        "received_at": iso(event.received_at),
        "processed_at": iso(event.processed_at),
        "error": event.error,
    }
    if with_payload:
        data["payload"] = event.payload
        data["history"] = _history(event)
    return data


def _history(event: Event) -> list[dict]:
    """The event's log, opened by its arrival and closed by its outcome, both read off the row itself."""
    from app.clock import iso

    logged = [
        {"at": iso(h.at), "action": h.action, "detail": h.detail}
        for h in EventLog.select().where(EventLog.event == event.id).order_by(EventLog.id)
    ]
    history = [] if any(h["action"] == "received" for h in logged) else [{"at": iso(event.received_at), "action": "received", "detail": None}]
    history += logged
    if event.status in EventStatus.DONE and event.processed_at is not None:
        detail = event.error if event.status == EventStatus.IGNORED else None
        history.append({"at": iso(event.processed_at), "action": event.status, "detail": detail})
    return history
