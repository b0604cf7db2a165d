"""One lane per endpoint: a worker process sends each endpoint's deliveries from threads of that endpoint's own.

A lane looks up only its endpoint's due deliveries and sends at most PER_ENDPOINT at once (one
while its endpoint's last attempt failed, so a refused endpoint with a backlog is probed rather
than flooded). An endpoint that hangs, trickles or refuses, or has a backlog that is slow to
look up, therefore fills and slows only its own lane: every other endpoint's deliveries go out
as if it were not there. A lane looks again as soon as an attempt ends, and every poll interval.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from app.config import Settings
from app.db import connection
from app.webhooks import delivery, endpoints

log = logging.getLogger(__name__)

PER_ENDPOINT = 4  # attempts in flight at once to one endpoint, per worker process
LOOKAHEAD = 32  # due deliveries a lane reads at once and keeps in line (a claim still decides who sends each)


class Lane:
    """The sender of one endpoint's deliveries in this process."""

    def __init__(self, endpoint_id: int, settings: Settings, size: int = PER_ENDPOINT):
        self.endpoint_id, self.settings, self.size = endpoint_id, settings, size
        self.failing = False
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._line: deque[int] = deque()
        self._ended = threading.Event()  # an attempt ended: there is room again
        self._stopped = threading.Event()
        self._senders = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"entitle-webhook-{endpoint_id}")
        self._thread = threading.Thread(target=self._run, name=f"entitle-lane-{endpoint_id}", daemon=True)

    def start(self) -> "Lane":
        """Start looking for due deliveries."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop taking work; attempts in flight end by their deadline."""
        self._stopped.set()
        self._ended.set()
        self._senders.shutdown(wait=False)

    def fill(self) -> int:
        """Start as many due deliveries as there is room for; returns how many were started."""
        with self._lock:
            room = (1 if self.failing else self.size) - len(self._in_flight)
            short = room > 0 and len(self._line) < room
        if room <= 0:
            return 0
        if short:
            with connection():
                found = delivery.due(LOOKAHEAD, self.endpoint_id)
            with self._lock:
                queued = set(self._line) | self._in_flight
                self._line.extend(i for i in found if i not in queued)
        with self._lock:
            taken = [self._line.popleft() for _ in range(min(room, len(self._line)))]
            self._in_flight.update(taken)
        for delivery_id in taken:
            self._senders.submit(self._attempt, delivery_id)
        return len(taken)

    def _run(self) -> None:
        failing = False
        while not self._stopped.is_set():
            self._ended.clear()
            try:
                self.fill()
                failing = False
            except Exception as exc:  # the database is down; the deliveries wait in their table
                if not failing:  # said once per outage, not every interval
                    log.warning("webhook lane %s could not look for deliveries (%s); trying again until it works",
                                self.endpoint_id, type(exc).__name__)
                failing = True
            self._ended.wait(self.settings.webhook_poll_interval)

    def _attempt(self, delivery_id: int) -> None:
        result = None
        try:
            result = delivery.attempt_now(delivery_id, self.settings)
        except Exception as exc:  # the database went away mid-attempt; the claim lapses and it is tried again
            log.warning("webhook delivery %s could not be attempted (%s)", delivery_id, type(exc).__name__)
        finally:
            with self._lock:
                self._in_flight.discard(delivery_id)
                if result == delivery.DELIVERED:
                    self.failing = False
                elif result is not None:
                    self.failing = True
                    self._line.clear()  # one probe at a time now; the rest are read again when it is due
            self._ended.set()


class Lanes:
    """A lane for every live endpoint: `sync()` opens lanes for new endpoints and closes those of removed ones."""

    def __init__(self, settings: Settings, size: int = PER_ENDPOINT):
        self.settings, self.size = settings, size
        self._lanes: dict[int, Lane] = {}

    def sync(self) -> None:
        """Match the lanes to the live endpoints."""
        with connection():
            live = {row.id for row in endpoints.live_cached()}
        for endpoint_id in live - set(self._lanes):
            self._lanes[endpoint_id] = Lane(endpoint_id, self.settings, self.size).start()
        for endpoint_id in set(self._lanes) - live:
            self._lanes.pop(endpoint_id).stop()

    def close(self) -> None:
        """Stop every lane."""
        for lane in self._lanes.values():
            lane.stop()
        self._lanes.clear()
