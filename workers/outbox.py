"""Each worker process sends the outgoing webhooks that are due, from a thread of its own."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from dramatiq.middleware import Middleware

from app.config import Settings
from app.webhooks import delivery

log = logging.getLogger(__name__)


class OutboxPump(Middleware):
    """Every `WEBHOOK_POLL_INTERVAL` seconds, attempts the deliveries that are due (claims keep workers from doubling up)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._senders: ThreadPoolExecutor | None = None

    def after_worker_boot(self, broker, worker):
        self._stop.clear()
        self._senders = ThreadPoolExecutor(max_workers=delivery.SENDERS, thread_name_prefix="entitle-webhook")
        self._thread = threading.Thread(target=self._run, name="entitle-outbox", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.webhook_timeout + 5)
        if self._senders is not None:
            self._senders.shutdown(wait=False)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                attempted = delivery.pump_once(self.settings, self._senders)
                failing = False
            except Exception as exc:  # the database is down; the deliveries wait in their table
                if not failing:  # said once per outage, not every interval
                    log.warning("webhook pump failed (%s); trying again until it works", type(exc).__name__)
                failing, attempted = True, 0
            if not attempted:
                self._stop.wait(self.settings.webhook_poll_interval)
