"""The event inbox: every accepted webhook is a row, processed once by its provider's handler."""
from __future__ import annotations

import functools
import logging
import operator
import contextlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable, Mapping

import peewee

from app import metrics
from app.clock import utcnow
from app.config import Settings
from app.db import database, for_update, is_postgres, transaction
from app.models import Event, EventLog, EventStatus
from app.plans import Catalogue, PlanFile
from app.redact import redact

log = logging.getLogger(__name__)

Handler = Callable[..., object]

DEFAULT_QUEUE = "payments"
"""Payments, refunds and subscription changes; a handler spec names another queue (chat access goes to `access`, replies to people to `sessions`)."""


@dataclass(frozen=True)
class HandlerSpec:
    """How the inbox runs one event type: the function, the queue its messages go to, and how it meets the transaction.

    The handler is called as `fn(event, context)`. `prepare(event, context)` runs first,
    outside the transaction, for reads from other services (fetch the current subscription);
    the handler is then called as `fn(event, context, prepared)` and its writes commit with the
    row's `processed` mark. `transactional=False` is for handlers that only call other
    services (send a message): they run outside the database transaction, so a slow API
    never holds a write lock.
    """

    fn: Handler
    queue: str = DEFAULT_QUEUE
    transactional: bool = True
    prepare: Callable[..., object] | None = None

    def __post_init__(self) -> None:
        if self.prepare is not None and not self.transactional:
            raise ValueError("prepare= is for transactional handlers; a non-transactional one can read what it needs itself")


def handler(
    fn: Handler, *, queue: str = DEFAULT_QUEUE, transactional: bool = True, prepare: Callable[..., object] | None = None
) -> HandlerSpec:
    """One row of a provider's handler table (see HandlerSpec)."""
    return HandlerSpec(fn, queue, transactional, prepare)


Table = Mapping[str, HandlerSpec]
"""One provider's handlers: event type -> spec."""


@dataclass(frozen=True)
class Context:
    """What handlers run with: the settings and the plan file, whose catalogue is read again after an edit."""

    settings: Settings
    plans: PlanFile
    # Gives a committed inbox row to the workers (the runtime's); without one the sweeper takes new rows.
    hand_off: Callable[[int], object] | None = None
    # Sends the message of a committed row born handed off (`record(..., handed_off=True)`).
    send_handed_off: Callable[[Event], object] | None = None

    @property
    def catalogue(self) -> Catalogue:
        """The plan catalogue as the file holds it now."""
        return self.plans.current()


class Handlers:
    """Every provider's table, looked up by (provider, event type); also where each kind of event is queued."""

    def __init__(self, tables: Mapping[str, Table]):
        self.tables = {provider: dict(table) for provider, table in tables.items()}

    def spec(self, provider: str, type_: str) -> HandlerSpec | None:
        """The spec for this kind of event, or None (the event is then marked ignored)."""
        return self.tables.get(provider, {}).get(type_)

    def queue_for(self, provider: str, type_: str) -> str:
        """The queue an event of this kind goes to: the route used by the webhook, the sweeper and replay alike."""
        spec = self.spec(provider, type_)
        return spec.queue if spec is not None else DEFAULT_QUEUE

    def queues(self) -> tuple[str, ...]:
        """Every queue the handlers use, the default one first."""
        named = {spec.queue for table in self.tables.values() for spec in table.values()}
        return (DEFAULT_QUEUE, *sorted(named - {DEFAULT_QUEUE}))

    def batchable(self, queue: str) -> frozenset[tuple[str, str]]:
        """The (provider, type) kinds of a queue whose handlers run wholly in the database, so a batch may take them."""
        return frozenset(
            (p, t) for p, table in self.tables.items() for t, spec in table.items()
            if spec.queue == queue and spec.transactional and spec.prepare is None
        )

    def in_claim(self) -> frozenset[tuple[str, str]]:
        """The (provider, type) kinds whose handler runs inside its claim's transaction (transactional, no `prepare`)."""
        return frozenset(
            (p, t) for p, table in self.tables.items() for t, spec in table.items() if spec.transactional and spec.prepare is None
        )

    def on_queue(self, queue: str) -> tuple[frozenset[tuple[str, str]], bool]:
        """The (provider, type) kinds that select a queue's rows, and whether a row is inside them or outside.

        The default queue also carries events no table knows, so it is "every kind not sent elsewhere".
        """
        if queue == DEFAULT_QUEUE:
            elsewhere = {(p, t) for p, table in self.tables.items() for t, spec in table.items() if spec.queue != queue}
            return frozenset(elsewhere), False
        mine = {(p, t) for p, table in self.tables.items() for t, spec in table.items() if spec.queue == queue}
        return frozenset(mine), True


_effects = threading.local()


class Ignore(Exception):
    """Raised by a handler that has nothing to do for this event; the row is marked ignored."""


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help; the row is marked failed at once."""


class Deferred(Exception):
    """Raised by a handler that runs outside the transaction (`transactional=False`) and must wait before trying again.

    For a Bot API 429's `retry_after`, or a spent budget: the attempt is not counted and no
    thread waits; the row stays pending, due in `delay` seconds, and the worker sends its
    message again with that delay.
    """

    def __init__(self, delay: float, reason: str = ""):
        super().__init__(reason or f"to be tried again in {delay:g} s")
        self.delay = max(0.0, float(delay))


# How an ignored row whose type no handler takes begins its reason (`no handler for stripe charge.succeeded`):
# an event the service does not handle, kept in `events list`, left out of a payer's timeline.
NO_HANDLER = "no handler for"

# What a handler may raise to say the event needs nothing done: the row is marked ignored. The
# composition root adds the services' own (a payment refunded or disputed before it granted).
IGNORED: tuple[type[Exception], ...] = (Ignore,)


def ignore_also(*exceptions: type[Exception]) -> None:
    """Mark rows whose handler raises one of these as ignored rather than failed."""
    global IGNORED
    IGNORED = tuple(dict.fromkeys((*IGNORED, *exceptions)))


def _log(event_id: int, action: str, detail: str | None = None) -> None:
    EventLog.create(event=event_id, action=action, detail=detail)


@dataclass(frozen=True)
class Recorded:
    """The inbox row of a delivery, whether this call created it, and whether it must be queued."""

    event: Event
    created: bool
    should_enqueue: bool


def record(
    provider: str, external_id: str, type_: str, payload: dict, *, status: str = EventStatus.PENDING, note: str | None = None,
    subject: int | None = None, handed_off: bool = False,
) -> Recorded:
    """Store an accepted delivery once per (provider, external id); `subject` is the Telegram user it is about.

    `handed_off`: the caller sends the new row's message itself, with generation `BORN_GENERATION`,
    once the row is committed (and calls `dispatch_failed` if that send fails). On PostgreSQL the row
    is then born handed off in one round trip (`INSERT … ON CONFLICT DO NOTHING RETURNING`, also inside
    a transaction, which a conflict does not abort); a duplicate takes the path below.

    A duplicate of a failed event is queued again with a fresh set of attempts; one of a
    pending event is queued only when its hand-off failed (otherwise its message is still
    on its way); a duplicate of a processed or ignored one changes nothing.
    """
    external_id = str(external_id)
    if handed_off and status == EventStatus.PENDING and not note and is_postgres():
        born = _insert_handed_off(provider, external_id, type_, payload, subject)
        if born is not None:
            return Recorded(born, True, True)
    # The common case is one INSERT in one short transaction; the row's own timestamps are its
    # first history line, so only a note needs a log row.
    try:
        with transaction():
            done_at = utcnow() if status == EventStatus.IGNORED else None
            event = Event.create(
                provider=provider, external_id=external_id, type=type_, payload=payload, status=status, processed_at=done_at,
                subject=subject,
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
            _reopen(event.id)
            event.status = EventStatus.PENDING
            _log(event.id, "duplicate", f"was failed after {event.attempts} attempt(s); queued again")
            return Recorded(event, False, True)
        if event.dispatched_at is not None:
            _log(event.id, "duplicate", "still pending; its message is on its way")
            return Recorded(event, False, False)
        _log(event.id, "duplicate", "still pending; queued again")
        return Recorded(event, False, True)


BORN_GENERATION = 1
"""The generation of a row born handed off: the message its recorder sends carries it."""


def _insert_handed_off(provider: str, external_id: str, type_: str, payload: dict, subject: int | None) -> Event | None:
    """Insert a new pending row already marked handed off, in one statement; None when the row exists."""
    now = utcnow()
    values = dict(
        provider=provider, external_id=external_id, type=type_, payload=payload, status=EventStatus.PENDING,
        subject=subject, received_at=now, updated_at=now, dispatch=BORN_GENERATION, dispatched_at=now,
    )
    inserted = list(Event.insert(**values).on_conflict_ignore().returning(Event.id).tuples().execute())
    if not inserted:
        return None
    return Event(id=inserted[0][0], attempts=0, **values)


def _reopen(event_id: int) -> None:
    """Make a failed (or pending) event pending with a fresh set of attempts; older messages become stale."""
    Event.update(
        status=EventStatus.PENDING, attempts=0, dispatch=Event.dispatch + 1, dispatched_at=None, started_at=None,
        updated_at=utcnow(),
    ).where(Event.id == event_id).execute()


def dispatch(event_id: int, *, expect: Event | None = None) -> int | None:
    """Mark a pending event as handed to the broker now; returns the generation its message must carry.

    None when the event is not pending (or, with `expect`, has moved on since that snapshot was read).
    """
    condition = (Event.id == event_id) & (Event.status == EventStatus.PENDING)
    if expect is not None:
        condition &= Event.dispatch == expect.dispatch
        condition &= Event.started_at.is_null() if expect.started_at is None else (Event.started_at == expect.started_at)
    with transaction():
        # A new hand-off presumes any attempt still marked as running died with its worker.
        if not Event.update(dispatch=Event.dispatch + 1, dispatched_at=utcnow(), started_at=None).where(condition).execute():
            return None
        return Event.select(Event.dispatch).where(Event.id == event_id).scalar()


def dispatch_failed(event_id: int, generation: int, detail: str | None = None) -> None:
    """Note that the message of this generation never reached the broker, so the sweeper takes the row soon."""
    with transaction():
        Event.update(dispatched_at=None).where((Event.id == event_id) & (Event.dispatch == generation)).execute()
        _log(event_id, "enqueue_failed", detail)


def describe_error(exc: BaseException) -> str:
    """One line naming an exception, short enough to store, with secrets hidden."""
    text = redact(f"{type(exc).__name__}: {exc}".strip())
    return text[:2000]


def current_context() -> Context | None:
    """The context of the handler running in this thread, or None outside a handler."""
    return getattr(_effects, "context", None)


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


def _run_handler(handler: Handler, event: Event, context: Context, *prepared: object) -> tuple[str, str | None]:
    try:
        handler(event, context, *prepared)
    except IGNORED as reason:
        return EventStatus.IGNORED, str(reason) or None
    return EventStatus.PROCESSED, None


LEASE = timedelta(seconds=60)


@dataclass
class _Claim:
    """An attempt a worker may run, or why it may not (`outcome`)."""

    event: Event | None = None
    outcome: str | None = None


def _claim(handlers: Handlers, event_id: int, generation: int | None, max_attempts: int | None) -> _Claim:
    """Start an attempt: only for a pending row, from a message of its current generation, while attempts remain.

    The attempt is counted here, under the row's lock, so however many copies of a message
    exist the row never runs more than `max_attempts` times.
    """
    with transaction():
        event = for_update(Event.select().where(Event.id == event_id)).first()
        if event is None:
            log.warning("event %s does not exist; dropping the message", event_id)
            return _Claim(outcome="missing")
        if event.status != EventStatus.PENDING:
            return _Claim(outcome=event.status)
        if generation is not None and generation != event.dispatch:
            log.info("event %s: dropping a stale message (generation %s; the row expects %s)", event_id, generation, event.dispatch)
            return _Claim(outcome="stale")
        now = utcnow()
        if max_attempts is not None and event.attempts >= max_attempts:
            Event.update(status=EventStatus.FAILED, started_at=None, updated_at=now).where(Event.id == event_id).execute()
            _log(event_id, "failed", f"no attempts left after {event.attempts}")
            return _Claim(outcome=EventStatus.FAILED)
        if event.started_at is not None:
            # Another copy's attempt is running; if it fails, its own retry comes back. (A new
            # hand-off clears this mark, so an attempt that died with its worker holds nothing.)
            log.info("event %s: an attempt is already running; dropping this copy", event_id)
            return _Claim(outcome=EventStatus.PENDING)
        spec = handlers.spec(event.provider, event.type)
        changes = {"attempts": Event.attempts + 1, "started_at": now}
        if spec is not None and not spec.transactional:
            # A network-only handler runs outside any lock: the lease keeps the sweeper away meanwhile.
            changes["lease_until"] = now + LEASE
        Event.update(**changes).where(Event.id == event_id).execute()
        event.attempts += 1
        return _Claim(event=event)


def _runnable(event_id: int, generation: int | None, max_attempts: int | None):
    """SQL for "this row is one this message may run": pending, not started, of the message's generation, attempts left."""
    condition = (Event.id == event_id) & (Event.status == EventStatus.PENDING) & Event.started_at.is_null()
    if generation is not None:
        condition &= Event.dispatch == generation
    if max_attempts is not None:
        condition &= Event.attempts < max_attempts
    return condition


_in_claim_sql: dict[frozenset, peewee.Node] = {}


def _in_claim(handlers: Handlers) -> peewee.Node:
    """SQL for "the row is of a kind whose handler runs in its claim's transaction", built once per set of tables."""
    kinds = handlers.in_claim()
    found = _in_claim_sql.get(kinds)
    if found is None:
        by_provider: dict[str, list[str]] = {}
        for provider, type_ in sorted(kinds):
            by_provider.setdefault(provider, []).append(type_)
        terms = [(Event.provider == provider) & Event.type.in_(types) for provider, types in by_provider.items()]
        found = _in_claim_sql.setdefault(kinds, functools.reduce(operator.or_, terms) if terms else peewee.SQL("1 = 0"))
    return found


def _claim_runnable(event_id: int, generation: int | None, max_attempts: int | None, handlers: Handlers | None = None) -> Event | None:
    """Inside the caller's transaction: count an attempt of a row this message may run and mark it started; None otherwise.

    One `UPDATE … RETURNING` on PostgreSQL, which also takes the row's lock; SQLite's IMMEDIATE
    transaction already holds the write lock, so there it is a read and an update. With `handlers`,
    a row whose handler runs in this transaction (`Handlers.in_claim`) has its outcome written up
    front, `processed`, so a handler that succeeds needs no statement after it: a failure or an
    ignore rolls back to the savepoint taken after the claim and writes the row's outcome again
    (`_failed`, `_finish`), before anyone else can see it. The row returned is as claimed (pending, started).
    """
    condition = _runnable(event_id, generation, max_attempts)
    now = utcnow()
    changes = {"attempts": Event.attempts + 1, "started_at": now}
    if handlers is not None:
        done, stamp = _in_claim(handlers), Event.processed_at.db_value(now)
        changes.update(
            status=peewee.Case(None, [(done, EventStatus.PROCESSED)], Event.status),
            started_at=peewee.Case(None, [(done, None)], Event.started_at.db_value(now)),
            processed_at=peewee.Case(None, [(done, stamp)], Event.processed_at),
            updated_at=peewee.Case(None, [(done, stamp)], Event.updated_at),
            error=peewee.Case(None, [(done, None)], Event.error),
        )
    if is_postgres():
        event = next(iter(Event.update(**changes).where(condition).returning(*Event._meta.sorted_fields).objects(Event)), None)
    else:
        event = Event.select().where(condition).first()
        if event is not None:
            Event.update(**changes).where(Event.id == event_id).execute()
            event.attempts += 1
    if event is not None:
        event.status, event.started_at, event.processed_at = EventStatus.PENDING, now, None
    return event


def process(
    event_id: int,
    *,
    handlers: Handlers,
    context: Context,
    final_attempt: bool = False,
    generation: int | None = None,
    max_attempts: int | None = None,
    prepare_first: bool = False,
) -> str:
    """Run an event's handler (looked up in `handlers`, called with `context`) and record the outcome; returns the event's status afterwards.

    A message from the broker passes its `generation`: one that is not the row's current one
    is dropped ("stale"), and so is any message for a row that is no longer pending. Each
    attempt is counted; the one that reaches `max_attempts` (or any, with `final_attempt`) is
    the last. A transactional handler without `prepare` runs in one transaction with its claim
    and the row's `processed` mark; one with `prepare` has its attempt counted first, then
    `prepare` runs outside any transaction and the handler's writes commit with the mark; a
    handler whose spec says `transactional=False` runs after its claim and before the mark. A
    failure rolls the handler's writes back and is recorded (error, attempts) and re-raised so
    the broker retries, unless it was the last attempt or the handler says retrying cannot
    help, when the row is `failed`.

    `prepare_first` (the message of a kind with `prepare` says so, see `Runtime.message_options`):
    `prepare` runs before the claim, so the claim, the handler's writes and the row's outcome
    commit in one transaction (`_process_prepared_first`).
    """
    if prepare_first:
        done = _process_prepared_first(
            event_id, handlers=handlers, context=context, final_attempt=final_attempt, generation=generation,
            max_attempts=max_attempts,
        )
        if done is not None:
            return done
    started = time.perf_counter()
    _effects.pending = []
    _effects.context = context
    provider, attempts, failure, batched = None, 0, None, []
    try:
        try:
            with transaction():
                event = _claim_runnable(event_id, generation, max_attempts, handlers)
                spec = handlers.spec(event.provider, event.type) if event is not None else None
                if event is not None:
                    provider, attempts = event.provider, event.attempts
                    last = final_attempt or (max_attempts is not None and attempts >= max_attempts)
                if event is None:
                    status = None
                    done = Event.select(Event.status).where(Event.id == event_id).scalar()
                    if done in EventStatus.DONE:
                        return done  # a batch (or a copy) handled this row: the message is acknowledged as it is
                elif spec is not None and spec.transactional and spec.prepare is None:
                    # The common case: the claim, the handler's writes and the row's outcome in one transaction.
                    status, failure = _run_in_claim(event, spec, context, last)
                    if failure is None and context is not None and _behind(event, context.settings):
                        batched = _run_batch(event, handlers, context, max_attempts, started)
                else:
                    status = None
                    if spec is not None and not spec.transactional:
                        # A network-only handler runs outside any lock: the lease keeps the sweeper away meanwhile.
                        Event.update(lease_until=utcnow() + LEASE).where(Event.id == event_id).execute()
            if failure is not None:
                _effects.pending = []
                metrics.events_processed.labels(provider=provider, result=status).inc()
                metrics.event_processing_seconds.labels(provider=provider).observe(time.perf_counter() - started)
                raise failure
            if event is None:
                claim = _claim(handlers, event_id, generation, max_attempts)  # says why not (or claims after all)
                if claim.event is None:
                    return claim.outcome
                event, provider, attempts = claim.event, claim.event.provider, claim.event.attempts
                spec = handlers.spec(event.provider, event.type)
            if status is None:
                status = _run_claimed(event, spec, context)
        except Deferred as deferred:
            _effects.pending = []
            _defer(event_id, deferred)
            metrics.events_processed.labels(provider=provider, result="deferred").inc()
            raise
        except IGNORED as reason:
            _effects.pending = []  # what the handler meant to do after its commit was rolled back with it
            status = _mark_ignored(event_id, str(reason) or None)
        except Exception as exc:
            if exc is failure:
                raise
            _effects.pending = []
            if provider is None:
                raise  # the row could not even be claimed (the database is unreachable): nothing to record
            last = final_attempt or (max_attempts is not None and attempts >= max_attempts)
            raise _record_failure(event_id, provider, exc, last, started)
    finally:
        effects, _effects.pending, _effects.context = _effects.pending, None, None
    _run_effects(effects)
    metrics.events_processed.labels(provider=provider, result=status).inc()
    metrics.event_processing_seconds.labels(provider=provider).observe(time.perf_counter() - started)
    for other in batched:
        metrics.events_processed.labels(provider=other, result=EventStatus.PROCESSED).inc()
    return status


def _process_prepared_first(
    event_id: int, *, handlers: Handlers, context: Context, final_attempt: bool, generation: int | None,
    max_attempts: int | None,
) -> str | None:
    """Run a row whose handler has a `prepare` (a read from another service) in one transaction; its status after.

    The row is read, outside any transaction; when this message may run it, `prepare` runs (no
    transaction is open while another service answers), then one transaction claims the row (the
    attempt counted and the outcome written, under the row's lock, only if it is still pending, not
    started, of this generation, with attempts left), runs the handler and commits. A `prepare` or
    handler that fails leaves nothing of its transaction: the attempt is counted and the failure
    recorded in a transaction of its own (`_claim_and_record`), which a copy that ran the row
    meanwhile leaves alone. None: this path does not take the row (missing, running, stale, no
    attempts left, moved on while `prepare` ran); `process` then decides as for any message.
    """
    event = Event.get_or_none(Event.id == event_id)
    if event is not None and event.status in EventStatus.DONE:
        return event.status  # a copy handled this row: the message is acknowledged as it is
    spec = handlers.spec(event.provider, event.type) if event is not None else None
    if not (
        spec is not None and spec.transactional and spec.prepare is not None and event.status == EventStatus.PENDING
        and event.started_at is None and (generation is None or generation == event.dispatch)
        and (max_attempts is None or event.attempts < max_attempts)
    ):
        return None
    started = time.perf_counter()
    provider = event.provider
    _effects.pending, _effects.context = [], context
    try:
        try:
            prepared, outcome = spec.prepare(event, context), None
        except IGNORED as reason:
            prepared, outcome = None, (EventStatus.IGNORED, str(reason) or None)
        with transaction():
            status, detail = outcome or (EventStatus.PROCESSED, None)
            now = utcnow()
            claimed = Event.update(
                attempts=Event.attempts + 1, status=status, processed_at=now, updated_at=now, lease_until=None,
                started_at=None, error=detail,
            ).where(_runnable(event_id, generation, max_attempts)).execute()
            if not claimed:
                _effects.pending = []
                return None  # the row moved on while `prepare` ran
            if outcome is None:
                event.attempts += 1
                spec.fn(event, context, prepared)  # its writes commit with the outcome written above
    except Deferred as deferred:
        _effects.pending = []
        _defer(event_id, deferred, counted=False)
        metrics.events_processed.labels(provider=provider, result="deferred").inc()
        raise
    except IGNORED as reason:
        _effects.pending = []  # the handler's writes and the claim were rolled back
        status = _claim_and_record(event_id, generation, max_attempts, final_attempt, reason)[0]
    except Exception as exc:
        _effects.pending = []
        status, failure = _claim_and_record(event_id, generation, max_attempts, final_attempt, exc)
        if failure is not None:
            metrics.events_processed.labels(provider=provider, result=status).inc()
            metrics.event_processing_seconds.labels(provider=provider).observe(time.perf_counter() - started)
            raise failure
    finally:
        effects, _effects.pending, _effects.context = _effects.pending, None, None
    _run_effects(effects)
    metrics.events_processed.labels(provider=provider, result=status).inc()
    metrics.event_processing_seconds.labels(provider=provider).observe(time.perf_counter() - started)
    return status


def _claim_and_record(
    event_id: int, generation: int | None, max_attempts: int | None, final_attempt: bool, exc: Exception
) -> tuple[str, Exception | None]:
    """A prepared-first attempt failed (or was ignored) with nothing committed: count the attempt and record why.

    (the row's status, the exception for the broker, None when there is nothing to retry). A row
    that moved on meanwhile (a copy ran it) keeps its outcome.
    """
    with transaction():
        event = _claim_runnable(event_id, generation, max_attempts)
        if event is None:
            return Event.select(Event.status).where(Event.id == event_id).scalar() or "missing", None
        if isinstance(exc, IGNORED):
            _finish(event_id, EventStatus.IGNORED, str(exc) or None)
            return EventStatus.IGNORED, None
        last = final_attempt or (max_attempts is not None and event.attempts >= max_attempts)
        return _failed(event_id, exc, last)


BACKLOG_AFTER = timedelta(milliseconds=100)
"""A message that reached its worker this long after its hand-off means rows are waiting: the worker batches."""


def _behind(event: Event, settings: Settings) -> bool:
    """True when the row's message waited in the queue (a backlog), on a database that can batch (PostgreSQL)."""
    return (
        settings.batch_rows > 1 and is_postgres() and event.subject is not None and event.dispatched_at is not None
        and utcnow() - event.dispatched_at > BACKLOG_AFTER
    )


def _run_batch(event: Event, handlers: Handlers, context: Context, max_attempts: int | None, started: float) -> list[str]:
    """Inside the own row's transaction: handle further pending rows of its queue; the providers of those processed.

    At most `BATCH_ROWS` rows in all, and none taken once the transaction has run `BATCH_SECONDS`
    (so a slow handler is never batched). Rows are claimed with `FOR UPDATE SKIP LOCKED` (another
    worker's batch or attempt keeps its own),
    only those about users after the own row's and in that order, so every transaction takes users'
    locks in one fixed order. Each runs under a savepoint of its own: one that fails is rolled back
    alone and left pending, untouched, for its own message to run it alone; the others commit.
    """
    spec = handlers.spec(event.provider, event.type)
    kinds = handlers.batchable(spec.queue)
    condition = (
        (Event.status == EventStatus.PENDING) & Event.started_at.is_null() & Event.dispatched_at.is_null(False)
        & (Event.subject > event.subject) & _kinds_filter(kinds, True)
    )
    if max_attempts is not None:
        condition &= Event.attempts < max_attempts
    settings = context.settings
    rows = Event.select().where(condition).order_by(Event.subject, Event.id).limit(settings.batch_rows - 1)
    done = []
    for row in rows.for_update(skip_locked=True):
        if time.perf_counter() - started > settings.batch_seconds:
            break  # the rest keep their messages; their locks go with this commit
        mark = len(_effects.pending)
        database.execute_sql(f"SAVEPOINT {BATCHED}")
        try:
            handlers.spec(row.provider, row.type).fn(row, context)
            now = utcnow()
            Event.update(
                status=EventStatus.PROCESSED, attempts=Event.attempts + 1, processed_at=now, updated_at=now, error=None
            ).where(Event.id == row.id).execute()
            database.execute_sql(f"RELEASE SAVEPOINT {BATCHED}")
            done.append(row.provider)
        except Exception as exc:  # an IGNORED too: its own message decides it alone
            database.execute_sql(f"ROLLBACK TO SAVEPOINT {BATCHED}")
            database.execute_sql(f"RELEASE SAVEPOINT {BATCHED}")
            del _effects.pending[mark:]
            log.info("event %s left to its own message after failing in a batch: %s", row.id, describe_error(exc))
    return done


BATCHED = "entitle_batched"


ATTEMPT = "entitle_attempt"
"""The savepoint a handler runs under in its claim's transaction (released by the COMMIT, so no statement of its own)."""


def _run_in_claim(event: Event, spec: HandlerSpec, context: Context, last: bool) -> tuple[str, Exception | None]:
    """Run a transactional handler inside its claim's transaction; (the row's status, the exception to raise after the commit).

    The claim wrote the row's outcome, `processed`, up front (`_claim_runnable`), so a handler that
    succeeds needs no statement after it. A handler that fails is rolled back to the savepoint taken
    after the claim, so its attempt stays counted and the row stays locked while the failure (or the
    ignore) is written over that outcome: no copy runs it in between, and no one saw the outcome before.
    """
    database.execute_sql(f"SAVEPOINT {ATTEMPT}")
    mark = len(_effects.pending)
    try:
        spec.fn(event, context)
    except IGNORED as reason:
        database.execute_sql(f"ROLLBACK TO SAVEPOINT {ATTEMPT}")
        del _effects.pending[mark:]
        _finish(event.id, EventStatus.IGNORED, str(reason) or None)
        return EventStatus.IGNORED, None
    except Exception as exc:
        database.execute_sql(f"ROLLBACK TO SAVEPOINT {ATTEMPT}")
        del _effects.pending[mark:]
        status, failure = _failed(event.id, exc, last)
        return status, failure
    return EventStatus.PROCESSED, None  # the claim wrote it (`_claim_runnable`)


def _failed(event_id: int, exc: Exception, last: bool) -> tuple[str, Exception]:
    """Inside the attempt's transaction: record its failure; (the row's status, the exception for the broker)."""
    permanent = isinstance(exc, PermanentError)
    status = EventStatus.FAILED if (last or permanent) else EventStatus.PENDING
    Event.update(
        status=status, error=describe_error(exc), updated_at=utcnow(), lease_until=None, started_at=None, processed_at=None
    ).where(Event.id == event_id).execute()
    _log(event_id, "failed" if status == EventStatus.FAILED else "attempt_failed", describe_error(exc))
    if status == EventStatus.FAILED and not permanent:
        # The row is failed: no retry of this message may run it again.
        failed = PermanentError(describe_error(exc))
        failed.__cause__ = exc
        return "failed", failed
    return ("failed" if status == EventStatus.FAILED else "retry"), exc


def _run_claimed(event: Event, spec: HandlerSpec | None, context: Context) -> str:
    """Run a claimed attempt whose handler needs a network call first (`prepare`, or a network-only handler); its status."""
    outcome, prepared = None, ()
    if spec is not None and spec.prepare is not None:
        try:
            prepared = (spec.prepare(event, context),)
        except IGNORED as reason:
            outcome = EventStatus.IGNORED, str(reason) or None
    if spec is not None and not spec.transactional:
        outcome = _run_handler(spec.fn, event, context)
    with transaction():
        current = for_update(Event.select(Event.status).where(Event.id == event.id)).get()
        if current.status != EventStatus.PENDING:
            return current.status
        if spec is None:
            outcome = EventStatus.IGNORED, f"{NO_HANDLER} {event.provider} {event.type}"
        elif outcome is None:
            spec.fn(event, context, *prepared)  # an IGNORED it raises rolls its writes back (see `process`)
            outcome = EventStatus.PROCESSED, None
        _finish(event.id, *outcome)
    return outcome[0]


def _finish(event_id: int, status: str, detail: str | None) -> None:
    now = utcnow()
    Event.update(
        status=status, processed_at=now, updated_at=now, lease_until=None, started_at=None,
        error=detail if status == EventStatus.IGNORED else None,
    ).where(Event.id == event_id).execute()


def _mark_ignored(event_id: int, detail: str | None) -> str:
    """Mark a claimed row whose handler said there is nothing to do as ignored (its writes were rolled back); its status after."""
    now = utcnow()
    changes = dict(status=EventStatus.IGNORED, processed_at=now, updated_at=now, lease_until=None, started_at=None, error=detail)
    with transaction():
        if Event.update(**changes).where((Event.id == event_id) & (Event.status == EventStatus.PENDING)).execute():
            return EventStatus.IGNORED
        return Event.select(Event.status).where(Event.id == event_id).scalar() or "missing"


def _record_failure(event_id: int, provider: str, exc: Exception, last: bool, started: float) -> Exception:
    """Record a claimed attempt's failure (the row is failed when it was the last or retrying cannot help); the exception to raise."""
    permanent = isinstance(exc, PermanentError)
    status = EventStatus.FAILED if (last or permanent) else EventStatus.PENDING
    changes = dict(status=status, error=describe_error(exc), updated_at=utcnow(), lease_until=None, started_at=None)
    with transaction():
        # A copy that finished meanwhile keeps its outcome.
        Event.update(**changes).where((Event.id == event_id) & (Event.status == EventStatus.PENDING)).execute()
        _log(event_id, "failed" if status == EventStatus.FAILED else "attempt_failed", describe_error(exc))
    metrics.events_processed.labels(provider=provider, result="failed" if status == EventStatus.FAILED else "retry").inc()
    metrics.event_processing_seconds.labels(provider=provider).observe(time.perf_counter() - started)
    if status == EventStatus.FAILED and not permanent:
        # The row is failed: no retry of this message may run it again.
        failed = PermanentError(describe_error(exc))
        failed.__cause__ = exc
        return failed
    return exc


def _defer(event_id: int, deferred: Deferred, *, counted: bool = True) -> None:
    """Give back the attempt a deferral took (`counted`) and mark the row due in `delay` seconds (the sweeper leaves it until then)."""
    now = utcnow()
    with transaction():
        Event.update(
            attempts=Event.attempts - (1 if counted else 0), started_at=None, lease_until=None, updated_at=now,
            dispatched_at=now + timedelta(seconds=deferred.delay),
        ).where((Event.id == event_id) & (Event.status == EventStatus.PENDING)).execute()
        _log(event_id, "deferred", str(deferred))


def statuses(event_ids: Iterable[int]) -> dict[int, str]:
    """The status of each of these events that exists."""
    ids = list(event_ids)
    return {row.id: row.status for row in Event.select(Event.id, Event.status).where(Event.id.in_(ids))} if ids else {}


def mark_for_replay(event_ids: Iterable[int]) -> list[int]:
    """Set events back to pending with a fresh set of attempts; returns the ids marked.

    A processed event is left exactly as it is: its work is done, and running it again could
    only rewrite its outcome (a refunded payment would look never granted).
    """
    found = []
    with transaction():
        for event_id in event_ids:
            event = for_update(Event.select().where(Event.id == event_id)).first()
            if event is None or event.status == EventStatus.PROCESSED:
                continue
            _reopen(event_id)
            _log(event_id, "replayed", f"queued again by an operator (was {event.status}, {event.attempts} attempt(s))")
            found.append(event_id)
    return found


def failed_ids(provider: str | None = None) -> list[int]:
    """Ids of every failed event, oldest first."""
    query = Event.select(Event.id).where(Event.status == EventStatus.FAILED)
    if provider:
        query = query.where(Event.provider == provider)
    return [row.id for row in query.order_by(Event.id)]


def _kinds_filter(kinds: Iterable[tuple[str, str]], inside: bool):
    """SQL for "(provider, type) is (not) one of these kinds"."""
    terms = [(Event.provider == provider) & (Event.type == type_) for provider, type_ in kinds]
    if not terms:
        return peewee.SQL("1 = 0") if inside else peewee.SQL("1 = 1")
    match = functools.reduce(operator.or_, terms)
    return match if inside else ~match


def never_handed_off(*, older_than: float, limit: int = 1000) -> list[Event]:
    """Pending events with no message in the broker (the hand-off failed or never happened), after `older_than` seconds."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    return list(
        Event.select()
        .where((Event.status == EventStatus.PENDING) & Event.dispatched_at.is_null() & (Event.updated_at < cutoff))
        .order_by(Event.id)
        .limit(limit)
    )


def stuck_running(*, lost_after: float, limit: int = 1000) -> list[Event]:
    """Pending events whose attempt started `lost_after` seconds ago and never ended (a killed worker)."""
    now = utcnow()
    return list(
        Event.select()
        .where(
            (Event.status == EventStatus.PENDING)
            & (Event.started_at < now - timedelta(seconds=lost_after))
            & (Event.lease_until.is_null() | (Event.lease_until < now))
        )
        .order_by(Event.id)
        .limit(limit)
    )


def lost_in_queue(
    *, in_broker: int, kinds: Iterable[tuple[str, str]], inside: bool, lost_after: float, limit: int = 1000
) -> list[Event]:
    """Events of one queue whose message is no longer in the broker.

    Of the rows handed to this queue and not started, the `in_broker` most recently handed
    off are taken to be the messages the broker still holds (a queue is first in, first
    out); any older one that has waited `lost_after` seconds is lost (flushed with Redis,
    or held by a worker that died). A healthy backlog has a message for every row, so
    none of it is taken.
    """
    cutoff = utcnow() - timedelta(seconds=lost_after)
    query = (
        Event.select()
        .where(
            (Event.status == EventStatus.PENDING)
            & Event.dispatched_at.is_null(False)
            & (Event.dispatched_at <= utcnow())  # a deferred row's message is due later, wherever it waits
            & Event.started_at.is_null()
            & _kinds_filter(kinds, inside)
        )
        .order_by(Event.dispatched_at.desc(), Event.id.desc())
        .offset(max(0, in_broker))
        .limit(limit)
    )
    return sorted((e for e in query if e.dispatched_at < cutoff), key=lambda e: e.id)


def all_pending(limit: int = 1000) -> list[Event]:
    """Every pending event, oldest first (after a restart of the in-process broker, whose queue died with it)."""
    return list(Event.select().where(Event.status == EventStatus.PENDING).order_by(Event.id).limit(limit))


def _events_matching(
    *, provider: str | None = None, status: str | None = None, search: str | None = None, user: int | None = None
):
    query = Event.select()
    if user is not None:
        query = query.where(Event.subject == user)
    if provider:
        query = query.where(Event.provider == provider)
    if status:
        query = query.where(Event.status == status)
    if search:
        # A charge id, PaymentIntent or Checkout Session id: the external id, or anywhere in the payload.
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where((Event.external_id == search) | _like(Event.external_id, pattern) | _like(Event.payload, pattern))
    return query


def _like(column, pattern: str):
    # The pattern bypasses the column's converter (the payload's would JSON-encode it); `\` escapes % and _.
    return peewee.NodeList((column, peewee.SQL("LIKE"), peewee.Value(pattern, converter=False), peewee.SQL("ESCAPE '\\'")))


def list_events(
    *, provider: str | None = None, status: str | None = None, search: str | None = None, user: int | None = None,
    limit: int = 50,
) -> list[Event]:
    """Events, newest first, filtered by provider, status, the Telegram user they are about and text in their id or payload."""
    query = _events_matching(provider=provider, status=status, search=search, user=user)
    return list(query.order_by(Event.id.desc()).limit(limit))


def count_events(
    *, provider: str | None = None, status: str | None = None, search: str | None = None, user: int | None = None
) -> int:
    """How many events `list_events` would find without a limit."""
    return _events_matching(provider=provider, status=status, search=search, user=user).count()


def counts() -> dict[str, int]:
    """How many events are in each status."""
    rows = Event.select(Event.status, peewee.fn.COUNT(Event.id).alias("n")).group_by(Event.status)
    result = {status: 0 for status in EventStatus.ALL}
    result.update({row.status: row.n for row in rows})
    return result


def pending_by_provider() -> dict[str, tuple[int, datetime]]:
    """For each provider with pending events: how many, and when the oldest of them arrived."""
    rows = (
        Event.select(Event.provider, peewee.fn.COUNT(Event.id).alias("n"), peewee.fn.MIN(Event.received_at).alias("oldest"))
        .where(Event.status == EventStatus.PENDING)
        .group_by(Event.provider)
    )
    return {row.provider: (row.n, Event.received_at.python_value(row.oldest)) for row in rows}


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
        "user": event.subject,
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


_collector = threading.local()


@contextlib.contextmanager
def collecting_hand_offs():
    """Collect the ids of events recorded inside this block, to hand off once the caller has committed."""
    outer = getattr(_collector, "ids", None)
    _collector.ids = ids = []
    try:
        yield ids
    finally:
        _collector.ids = outer


def hand_off_after_commit(event_ids: list[int]) -> None:
    """Give these events to the workers once the current unit of work commits.

    Inside an inbox handler that is after its commit; inside `collecting_hand_offs()` the
    caller does it; anywhere else the sweeper takes them within `SWEEP_AFTER`.
    """
    if not event_ids:
        return
    collected = getattr(_collector, "ids", None)
    if collected is not None:
        collected.extend(event_ids)
        return
    context = current_context()
    if context is not None and context.hand_off is not None:
        after_commit(lambda: [context.hand_off(event_id) for event_id in event_ids])
