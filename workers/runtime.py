"""The runtime: what a process runs with, built once from a `Settings` (the composition root).

`create_app()`, `entitle run`, `entitle worker` (through `workers.main`) and the tests each
build one with `build_runtime(settings)`: the settings, the plan file (read again whenever it
changes, in web processes and workers alike), the providers' handler tables, and a broker
with the project's middleware and actors declared on it. Nothing here runs at import.

An event goes: the webhook route calls `Runtime.accept` → the inbox records the row →
`Runtime.hand_off` sends its id to the actor of the queue `Handlers.queue_for` names →
the actor calls `inbox.process`, which runs the row's handler from the tables. The sweeper
and `entitle events replay` hand rows off through the same `Runtime.hand_off`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Mapping

import dramatiq

from app import composition, db, inbox
from app import stripe as stripe_provider
from app import telegram as telegram_provider
from app.config import Settings
from app.inbox import Context, Handlers, Table
from app.models import Event
from app.plans import Catalogue, PlanError, PlanFile
from app.access import handlers as access_handlers
from app.access import rules as access_rules
from app.stripe import handlers as stripe_handlers
from app.telegram import handlers as telegram_handlers
from workers.broker import build_broker
from workers.expiry import Expiry
from workers.reconcile import Reconciler
from workers.sweeper import Sweeper

log = logging.getLogger(__name__)

PROVIDER_TABLES: Mapping[str, Table] = {
    telegram_provider.SOURCE: {**telegram_handlers.HANDLERS, **access_handlers.TELEGRAM_HANDLERS},
    stripe_provider.SOURCE: stripe_handlers.HANDLERS,
    access_handlers.PROVIDER: access_handlers.HANDLERS,
}
"""Every provider's handler table, by provider name: a new provider is one more row."""

# The actor that consumes each queue (its name is what messages in the broker carry).
ACTOR_NAMES = {"payments": "process_event", "sessions": "process_session_event"}
# Within one process, messages already fetched run payments first, then replies, then chat access (lower runs first).
QUEUE_PRIORITY = {"sessions": 10, "access": 20}


def actor_name(queue: str) -> str:
    """The name of the actor that consumes `queue`."""
    return ACTOR_NAMES.get(queue, f"process_{queue}_event")


@dataclass
class Runtime:
    """Settings, plan file, handler tables and broker of one process, and the hand-off of inbox rows to the workers."""

    settings: Settings
    plans: PlanFile
    handlers: Handlers
    broker: dramatiq.Broker
    _broker_failing_until: float = field(default=0.0, init=False, repr=False)

    @property
    def context(self) -> Context:
        """What handlers run with."""
        return Context(self.settings, self.plans, hand_off=self.enqueue, send_handed_off=self.send_handed_off)

    def catalogue(self) -> Catalogue:
        """The plan catalogue as the plan file holds it now."""
        return self.plans.current()

    def catalogue_if_readable(self) -> Catalogue | None:
        """The catalogue, or None after a broken edit (transitions then reach their consumers through a `transition` event)."""
        try:
            return self.plans.current()
        except PlanError:
            return None

    def queues(self) -> tuple[str, ...]:
        """The queues the workers consume."""
        return self.handlers.queues()

    def accept(self, provider: str, external_id: str, type_: str, payload: dict, *, subject: int | None = None) -> inbox.Recorded:
        """Record a verified delivery (about the Telegram user `subject`) in the inbox and hand it to the workers when there is work to do."""
        recorded = inbox.record(provider, external_id, type_, payload, subject=subject, handed_off=True)
        if recorded.created and recorded.event.dispatch == inbox.BORN_GENERATION:
            self.send_handed_off(recorded.event)  # born handed off: its message goes now
        elif recorded.should_enqueue:
            self.enqueue(recorded.event.id)
        return recorded

    def send_handed_off(self, event: Event) -> bool:
        """Send the message of a committed row born handed off; False (and the row is left to the sweeper) if that failed.

        While the broker is failing (see `enqueue`) nothing is tried: the row is marked as never handed off.
        """
        if self._broker_failing():
            inbox.dispatch_failed(event.id, inbox.BORN_GENERATION, "the broker failed moments ago")
            return False
        try:
            self._send(event, inbox.BORN_GENERATION)
            return True
        except Exception as exc:
            self._broker_failed()
            log.warning("could not enqueue event %s (%s); the sweeper will retry", event.id, type(exc).__name__)
            return False

    def enqueue(self, event_id: int) -> bool:
        """Hand a pending inbox row to the workers; False (and the row stays pending for the sweeper) if that failed.

        After a failure the next `BROKER_TIMEOUT` x 5 seconds try nothing: while the broker is down
        or frozen, each webhook would otherwise wait on it in turn, and Telegram waits for some answers.
        """
        if self._broker_failing():
            return False
        try:
            event = Event.get_or_none(Event.id == event_id)
            return event is not None and self.hand_off(event)
        except Exception as exc:
            self._broker_failed()
            log.warning("could not enqueue event %s (%s); the sweeper will retry", event_id, type(exc).__name__)
            return False

    def _broker_failed(self) -> None:
        self._broker_failing_until = time.monotonic() + 5 * self.settings.broker_timeout

    def _broker_failing(self) -> bool:
        return time.monotonic() < self._broker_failing_until

    def hand_off(self, event: Event, *, expect: Event | None = None) -> bool:
        """Give a pending row to the actor of its queue with its next generation; False when the row needs no message.

        Raises when the broker cannot take the message; the row is then marked as never handed off.
        """
        generation = inbox.dispatch(event.id, expect=expect)
        if generation is None:
            return False
        self._send(event, generation)
        return True

    def message_options(self, provider: str, type_: str) -> dict:
        """What a row's message carries besides its id and generation: `prepare_first` for a kind with `prepare`.

        Its worker then runs `prepare` before claiming the row, so claim and grant are one transaction
        (`inbox.process`); a message without it (an older one, a deferred one) takes the row the usual way.
        """
        spec = self.handlers.spec(provider, type_)
        return {"prepare_first": True} if spec is not None and spec.transactional and spec.prepare is not None else {}

    def _send(self, event: Event, generation: int) -> None:
        """Send a handed-off row's message to the actor of its queue; a failed send leaves the row to the sweeper (and raises)."""
        queue = self.handlers.queue_for(event.provider, event.type)
        try:
            self.broker.get_actor(actor_name(queue)).send(event.id, generation, **self.message_options(event.provider, event.type))
        except Exception as exc:
            inbox.dispatch_failed(event.id, generation, type(exc).__name__)
            raise

    def send_later(self, queue: str, event_id: int, generation: int, delay: float) -> None:
        """Send a deferred row's message again, due in `delay` seconds; if the broker cannot take it, the sweeper will."""
        try:
            self.broker.get_actor(actor_name(queue)).send_with_options(args=(event_id, generation), delay=int(delay * 1000))
        except Exception as exc:
            inbox.dispatch_failed(event_id, generation, type(exc).__name__)

    def process(self, event_id: int, generation: int = 0, *, prepare_first: bool = False) -> str:
        """Run one attempt of an event, as an actor does for a message of this generation (and `message_options`)."""
        with access_rules.using(self.catalogue_if_readable()):
            return inbox.process(
                event_id, handlers=self.handlers, context=self.context, generation=generation,
                max_attempts=self.settings.event_max_retries + 1, prepare_first=prepare_first,
            )

    def run_inline(self, event_id: int) -> str:
        """Process one event in this process (no broker), as a final attempt; returns its status."""
        try:
            # No hand-off from here: this process's broker dies with it, so what the event records
            # waits, undispatched, for the sweeper of the process that runs the workers.
            context = Context(self.settings, self.plans)
            with access_rules.using(self.catalogue_if_readable()):
                return inbox.process(event_id, handlers=self.handlers, context=context, final_attempt=True)
        except Exception:
            return "failed"


def declare_actors(runtime: Runtime) -> list[dramatiq.Actor]:
    """Declare one actor per queue on the runtime's broker, with the retry policy from the settings."""
    settings = runtime.settings

    def consumer(queue: str):
        def run(event_id: int, generation: int = 0, prepare_first: bool = False) -> None:
            # A message from before generations existed carries only the id: it is generation 0.
            try:
                runtime.process(event_id, generation, prepare_first=prepare_first)
            except inbox.Deferred as deferred:
                runtime.send_later(queue, event_id, generation, deferred.delay)

        return run

    options = dict(
        max_retries=settings.event_max_retries,
        min_backoff=settings.event_min_backoff_ms,
        max_backoff=settings.event_max_backoff_ms,
        throws=(inbox.PermanentError,),
    )
    return [
        dramatiq.actor(consumer(queue), actor_name=actor_name(queue), queue_name=queue, broker=runtime.broker,
                       priority=QUEUE_PRIORITY.get(queue, 0), **options)
        for queue in runtime.queues()
    ]


def build_runtime(settings: Settings, *, tables: Mapping[str, Table] = PROVIDER_TABLES) -> Runtime:
    """The runtime for these settings: the database bound (not connected), the core composed, the plan file, the tables and a broker with its actors."""
    if db.database.obj is None:
        db.bind(settings.database_url)
    composition.wire()
    runtime = Runtime(settings, PlanFile(settings.plans_file), Handlers(tables), build_broker(settings))
    runtime.broker.add_middleware(Sweeper(runtime))
    # Ends are checked as often as lost work is swept, between 1 and 10 seconds.
    runtime.broker.add_middleware(Expiry(runtime, min(10.0, max(1.0, settings.sweep_interval))))
    runtime.broker.add_middleware(Reconciler(runtime))
    declare_actors(runtime)
    return runtime
