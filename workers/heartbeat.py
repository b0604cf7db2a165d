"""Each worker process leaves a heartbeat in the database while it runs."""
from __future__ import annotations

import logging
import threading

from dramatiq.middleware import Middleware

from app import heartbeats
from app.db import connection

log = logging.getLogger(__name__)


class Heartbeat(Middleware):
    """Beats at worker boot and every `heartbeats.INTERVAL_SECONDS`; the row goes when the worker stops."""

    def __init__(self, interval: float = heartbeats.INTERVAL_SECONDS):
        self.interval = interval
        self.worker = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker):
        self.worker = heartbeats.worker_name()  # named here: a forked process must not share its parent's name
        self._stop.clear()
        self._beat()  # the first one before the worker takes messages, so it is seen at once
        self._thread = threading.Thread(target=self._run, name="entitle-heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with connection():
                heartbeats.forget(self.worker)
        except Exception as exc:
            log.warning("could not remove this worker's heartbeat: %s", type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def _beat(self) -> None:
        try:
            with connection():
                heartbeats.beat(self.worker)
        except Exception as exc:  # the database is down; status and /healthz will say so
            log.warning("worker heartbeat not written: %s", type(exc).__name__)
