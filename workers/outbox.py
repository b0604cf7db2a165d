"""Each worker process sends the outgoing webhooks that are due, each endpoint from a lane of its own."""
from __future__ import annotations

import logging
import threading

from dramatiq.middleware import Middleware

from app.config import Settings
from app.webhooks.lanes import Lanes

log = logging.getLogger(__name__)


class OutboxPump(Middleware):
    """Keeps a lane per live endpoint (`app.webhooks.lanes`), looking for added and removed endpoints every poll interval."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lanes: Lanes | None = None

    def after_worker_boot(self, broker, worker):
        self._stop.clear()
        self._lanes = Lanes(self.settings)
        self._thread = threading.Thread(target=self._run, args=(self._lanes,), name="entitle-outbox", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._lanes is not None:
            self._lanes.close()

    def _run(self, lanes: Lanes) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                lanes.sync()
                failing = False
            except Exception as exc:  # the database is down; the deliveries wait in their table
                if not failing:  # said once per outage, not every interval
                    log.warning("webhook pump failed (%s); trying again until it works", type(exc).__name__)
                failing = True
            self._stop.wait(self.settings.webhook_poll_interval)
