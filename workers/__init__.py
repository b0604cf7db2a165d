"""Dramatiq workers. Importing this package sets the global broker from the environment,
so `dramatiq workers` (the Procfile's `worker:`) finds the actors."""
from __future__ import annotations

import logging

import dramatiq

from app import inbox, providers
from app.db import bind, database
from app.config import Settings, load_settings
from workers.actors import actor_name_for, declare
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


def enqueue_event(event_id: int, actor_name: str = "process_event") -> bool:
    """Hand an inbox row to the workers; False (and the row stays pending for the sweeper) if the broker is down."""
    try:
        current_broker().get_actor(actor_name).send(event_id)
        return True
    except Exception as exc:
        log.warning("could not enqueue event %s (%s); the sweeper will retry", event_id, type(exc).__name__)
        try:
            inbox.log_enqueued(event_id, False, type(exc).__name__)
        except Exception:
            log.exception("could not note the enqueue failure of event %s", event_id)
        return False


def accept(provider: str, external_id: str, type_: str, payload: dict) -> inbox.Recorded:
    """Record a verified delivery in the inbox and enqueue it when there is work to do."""
    recorded = inbox.record(provider, external_id, type_, payload)
    if recorded.should_enqueue:
        enqueue_event(recorded.event.id, actor_name_for(provider, type_))
    return recorded


def run_inline(event_id: int) -> str:
    """Process one event in this process (no broker), as a final attempt; returns its status."""
    try:
        return inbox.process(event_id, final_attempt=True)
    except Exception:
        return "failed"


broker = setup()
