"""Every few seconds each worker ends the entitlements whose end has passed and queues due reminders (each once)."""
from __future__ import annotations

import logging
import threading

from dramatiq.middleware import Middleware

from app.db import connection

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 10.0  # an end is noticed well within a minute


class Expiry(Middleware):
    """Runs `app.access.expiry.run_once` at worker boot and then every `interval` seconds, with the runtime's catalogue."""

    def __init__(self, runtime, interval: float = INTERVAL_SECONDS):
        self.runtime = runtime
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="entitle-expiry", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()

    def _run(self) -> None:
        from app.access import expiry, rules

        while not self._stop.is_set():
            try:
                with connection(), rules.using(self.runtime.catalogue_if_readable()):
                    expiry.run_once(hand_off=self.runtime.enqueue)
            except Exception:
                log.exception("expiry check failed; trying again later")
            self._stop.wait(self.interval)
