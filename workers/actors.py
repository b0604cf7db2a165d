"""Dramatiq actors: thin wrappers that load a row id and call the core."""
from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from app import inbox
from app.config import Settings


def declare(settings: Settings) -> list[dramatiq.Actor]:
    """Declare the project's actors with the retry policy from the settings."""

    @dramatiq.actor(
        actor_name="process_event",
        queue_name="events",
        max_retries=settings.event_max_retries,
        min_backoff=settings.event_min_backoff_ms,
        max_backoff=settings.event_max_backoff_ms,
        throws=(inbox.PermanentError,),
    )
    def process_event(event_id: int) -> None:
        """Run one inbox event through its handler."""
        message = CurrentMessage.get_current_message()
        retries = message.options.get("retries", 0) if message else 0
        inbox.process(event_id, final_attempt=retries >= settings.event_max_retries)

    return [process_event]
