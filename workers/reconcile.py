"""Reconcile with the providers' ledgers every `RECONCILE_INTERVAL` seconds, one worker at a time.

Each worker process runs a thread that, once per interval, asks for each configured provider's
lease (a conditional UPDATE of its state row, granted only when the last run is an interval old
and no one holds it); the one that gets it reads the ledger since the cursor, records what the
inbox lacks, hands the new rows to the broker and stores the outcome. The first attempt waits one
interval after boot, so starting workers does not call the providers at once.
"""
from __future__ import annotations

import logging
import threading

from dramatiq.middleware import Middleware

from app import heartbeats, inbox
from app.config import Settings
from app.db import connection
from app.reconcile import runs, service

log = logging.getLogger(__name__)

# A run that takes longer than this is presumed dead with its worker, and another may start.
LEASE_SECONDS = 600.0
CHECK_EVERY = 5.0  # seconds between asks for the lease


def reconcile_once(settings: Settings, hand_off, holder: str) -> dict[str, str]:
    """Reconcile each configured provider that is due and free; returns what happened to each."""
    outcomes = {}
    for provider in service.PROVIDERS:
        if not service.configured(provider, settings):
            continue
        with connection():
            if not runs.claim(provider, holder, interval=settings.reconcile_interval, lease=LEASE_SECONDS):
                outcomes[provider] = "not due"
                continue
            outcomes[provider] = _run(provider, settings, hand_off, holder)
    return outcomes


def _run(provider: str, settings: Settings, hand_off, holder: str) -> str:
    try:
        report = service.reconcile(provider, settings, routine=True)
    except Exception as exc:
        error = inbox.describe_error(exc)
        log.warning("reconciliation with the %s ledger failed: %s", provider, error)
        runs.finish(provider, error=error, holder=holder)
        return "failed"
    for event_id in report.recorded_ids:
        hand_off(event_id)  # False when the broker is down: the sweeper queues it once the broker is back
    runs.finish(provider, report=report, holder=holder)
    recorded = report.count(runs.Action.RECORDED)
    if recorded:
        log.info("reconciliation with the %s ledger recorded %d missed event(s)", provider, recorded)
    return f"{recorded} recorded"


class Reconciler(Middleware):
    """Runs `reconcile_once` every `RECONCILE_INTERVAL` seconds in each worker process (0: never)."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.settings = runtime.settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker):
        if self.settings.reconcile_interval <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(broker,), name="entitle-reconciler", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()

    def _loop(self, broker) -> None:
        holder = heartbeats.worker_name()
        interval = self.settings.reconcile_interval
        # Ask often (the lease says whether a run is due), so the interval holds across several workers.
        if self._stop.wait(interval):
            return
        while True:
            try:
                reconcile_once(self.settings, self.runtime.enqueue, holder)
            except Exception:
                log.exception("reconciliation failed; trying again in %s s", interval)
            if self._stop.wait(min(interval, CHECK_EVERY)):
                return
