"""Dramatiq workers. Importing this package sets the global broker from the environment,
so `dramatiq workers` (the Procfile's `worker:`) finds the actors."""
from __future__ import annotations

import logging

import dramatiq

from app import inbox, providers
from app.db import bind, database
from app.config import Settings, load_settings
from app.models import Event
from workers.actors import declare, hand_off
from workers.broker import build_broker

log = logging.getLogger(__name__)


def setup(settings: Settings | None = None) -> dramatiq.Broker:
    """Build the broker for these settings, make it global and declare the actors on it."""
    settings = settings or load_settings()
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    declare(settings)
    providers.load_handlers(settings)
    if database.obj is None:
        bind(settings.database_url)
    return broker


def current_broker() -> dramatiq.Broker:
    """The broker actors send to."""
    return dramatiq.get_broker()


def enqueue_event(event_id: int) -> bool:
    """Hand a pending inbox row to the workers; False (and the row stays pending for the sweeper) if that failed."""
    try:
        event = Event.get_or_none(Event.id == event_id)
        return event is not None and hand_off(current_broker(), event)
    except Exception as exc:
        log.warning("could not enqueue event %s (%s); the sweeper will retry", event_id, type(exc).__name__)
        return False


def accept(provider: str, external_id: str, type_: str, payload: dict) -> inbox.Recorded:
    """Record a verified delivery in the inbox and enqueue it when there is work to do."""
    recorded = inbox.record(provider, external_id, type_, payload)
    if recorded.should_enqueue:
        enqueue_event(recorded.event.id)
    return recorded


def run_inline(event_id: int) -> str:
    """Process one event in this process (no broker), as a final attempt; returns its status."""
    try:
        return inbox.process(event_id, final_attempt=True)
    except Exception:
        return "failed"


broker = setup()
