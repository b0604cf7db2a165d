"""Dramatiq actors: thin wrappers that load a row id and call the core.

Payments, refunds and subscription changes go to the `events` queue; replies to people
(bot commands, messages) go to `sessions`, so a burst of /start never delays a grant.
"""
from __future__ import annotations

import dramatiq

from app import inbox
from app.config import Settings
from app.models import Event

SESSION_TYPES = frozenset({("telegram", "command"), ("telegram", "send_message")})


def actor_name_for(provider: str, type_: str) -> str:
    """The actor (and so the queue) an event of this kind goes to."""
    return "process_session_event" if (provider, type_) in SESSION_TYPES else "process_event"


def hand_off(broker: dramatiq.Broker, event: Event, *, expect: Event | None = None) -> bool:
    """Give a pending row to the broker with its next generation; False when the row needs no message.

    Raises when the broker cannot take the message; the row is then marked as never handed off.
    """
    generation = inbox.dispatch(event.id, expect=expect)
    if generation is None:
        return False
    try:
        broker.get_actor(actor_name_for(event.provider, event.type)).send(event.id, generation)
    except Exception as exc:
        inbox.dispatch_failed(event.id, generation, type(exc).__name__)
        raise
    return True


def declare(settings: Settings) -> list[dramatiq.Actor]:
    """Declare the project's actors with the retry policy from the settings."""

    def run(event_id: int, generation: int = 0) -> None:
        # A message from before generations existed carries only the id: it is generation 0.
        inbox.process(event_id, generation=generation, max_attempts=settings.event_max_retries + 1)

    options = dict(
        max_retries=settings.event_max_retries,
        min_backoff=settings.event_min_backoff_ms,
        max_backoff=settings.event_max_backoff_ms,
        throws=(inbox.PermanentError,),
    )
    return [
        dramatiq.actor(run, actor_name="process_event", queue_name="events", **options),
        dramatiq.actor(run, actor_name="process_session_event", queue_name="sessions", **options),
    ]
