"""Queue again the inbox rows whose message is gone (a broker outage, a flushed Redis, a killed worker).

A row's message is taken for lost only when the broker cannot be holding it: the hand-off
failed, the attempt started and never ended, or the queue holds fewer messages than rows
waiting for one (the oldest of those are the lost ones). A backlog still in its queue is
never queued twice, and a copy that does exist is harmless: each hand-off gets a new
generation and the worker drops a message whose generation the row does not expect.
"""
from __future__ import annotations

import logging
import threading

from typing import Protocol

import dramatiq
from dramatiq.middleware import Middleware

from app import inbox
from app.config import Settings
from app.db import connection
from app.models import Event


class Runtime(Protocol):
    """What the sweeper needs of `workers.runtime.Runtime` (which builds the sweeper, so is not imported here)."""

    settings: Settings
    handlers: inbox.Handlers
    broker: dramatiq.Broker

    def queues(self) -> tuple[str, ...]: ...

    def hand_off(self, event: Event, *, expect: Event | None = None) -> bool: ...

log = logging.getLogger(__name__)


def lost_events(runtime: "Runtime") -> list[Event]:
    """Pending rows with no message in the broker, each once, oldest first."""
    settings = runtime.settings
    found = inbox.never_handed_off(older_than=settings.sweep_after)
    found += inbox.stuck_running(lost_after=settings.sweep_lost_after)
    for queue, depth in _messages_held(runtime).items():
        kinds, inside = runtime.handlers.on_queue(queue)
        found += inbox.lost_in_queue(in_broker=depth, kinds=kinds, inside=inside, lost_after=settings.sweep_lost_after)
    unique = {event.id: event for event in found}
    return [unique[i] for i in sorted(unique)]


def _messages_held(runtime: "Runtime") -> dict[str, int]:
    """Messages the broker holds for each queue (ready and delayed); a queue it cannot count is left out."""
    from dramatiq.brokers.stub import StubBroker

    from workers.broker import queue_depths

    broker = runtime.broker
    try:
        if isinstance(broker, StubBroker) or hasattr(broker, "client"):  # in-process or Redis
            return queue_depths(broker, runtime.queues())
        depths = {}
        for queue in runtime.queues():  # RabbitMQ
            ready, delayed, _dead = broker.get_queue_message_counts(queue)
            depths[queue] = ready + delayed
        return depths
    except Exception as exc:  # a count we cannot read is never taken for an empty queue
        log.warning("sweeper could not count the queued messages: %s", type(exc).__name__)
        return {}


def sweep_once(runtime: "Runtime", *, everything: bool = False) -> int:
    """Hand every pending row whose message is lost (every pending one with `everything`) to the broker; returns how many.

    Each goes through `Runtime.hand_off`, so to the queue its kind is routed to (a bot command to `sessions`).
    """
    with connection():
        candidates = inbox.all_pending() if everything else lost_events(runtime)
        sent = 0
        for event in candidates:
            try:
                # `expect`: only if the row has not moved on since it was read (started, handed off).
                sent += runtime.hand_off(event, expect=event)
            except Exception as exc:  # the broker is still down; the next sweep tries again
                log.warning("sweeper could not enqueue event %s: %s", event.id, type(exc).__name__)
                break
    if sent:
        log.info("sweeper queued %d pending event(s) again", sent)
    return sent


class Sweeper(Middleware):
    """Sweeps at worker start and then every `SWEEP_INTERVAL` seconds."""

    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(broker,), name="entitle-sweeper", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()

    def _run(self, broker) -> None:
        # An in-process broker starts empty: whatever was pending when the process stopped is lost from it.
        everything = self.runtime.settings.embedded_broker
        while not self._stop.is_set():
            try:
                sweep_once(self.runtime, everything=everything)
                everything = False
            except Exception:
                log.exception("sweep failed; trying again later")
            self._stop.wait(self.runtime.settings.sweep_interval)
