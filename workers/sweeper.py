"""Queue again the inbox rows nobody is working on (after a broker outage or a restart)."""
from __future__ import annotations

import logging
import threading

from dramatiq.middleware import Middleware

from app import inbox
from app.config import Settings
from app.db import connection

log = logging.getLogger(__name__)


def sweep_once(settings: Settings, send, *, everything: bool = False) -> int:
    """Hand every stale pending event (every pending one with `everything`) to `send`; returns how many were sent."""
    with connection():
        ids = inbox.stale_pending(
            older_than=settings.sweep_after,
            retry_grace=settings.event_max_backoff_ms / 1000,
            lost_after=0 if everything else settings.sweep_lost_after,
        )
        sent = []
        for event_id in ids:
            try:
                send(event_id)
            except Exception as exc:  # the broker is still down; the next sweep tries again
                log.warning("sweeper could not enqueue event %s: %s", event_id, type(exc).__name__)
                break
            sent.append(event_id)
        inbox.touch(sent)
    if sent:
        log.info("sweeper queued %d pending event(s) again", len(sent))
    return len(sent)


class Sweeper(Middleware):
    """Sweeps at worker start and then every `SWEEP_INTERVAL` seconds."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(broker,), name="entitle-sweeper", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()

    def _run(self, broker) -> None:
        actor = broker.get_actor("process_event")
        # An in-process broker starts empty: whatever was pending when the process stopped is lost from it.
        everything = self.settings.embedded_broker
        while not self._stop.is_set():
            try:
                sweep_once(self.settings, actor.send, everything=everything)
                everything = False
            except Exception:
                log.exception("sweep failed; trying again later")
            self._stop.wait(self.settings.sweep_interval)
