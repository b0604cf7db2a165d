"""Dramatiq actors: thin wrappers that load a row id and call the core.

Payments, refunds and subscription changes go to the `events` queue; replies to people
(bot commands, messages) go to `sessions`, so a burst of /start never delays a grant.
"""
from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from app import inbox
from app.config import Settings

SESSION_TYPES = frozenset({("telegram", "command"), ("telegram", "send_message")})


def actor_name_for(provider: str, type_: str) -> str:
    """The actor (and so the queue) an event of this kind goes to."""
    return "process_session_event" if (provider, type_) in SESSION_TYPES else "process_event"


def declare(settings: Settings) -> list[dramatiq.Actor]:
    """Declare the project's actors with the retry policy from the settings."""

    def run(event_id: int) -> None:
        message = CurrentMessage.get_current_message()
        retries = message.options.get("retries", 0) if message else 0
        inbox.process(event_id, final_attempt=retries >= settings.event_max_retries)

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
