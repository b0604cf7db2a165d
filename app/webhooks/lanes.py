"""One lane per endpoint: a worker process sends each endpoint's deliveries with threads of that endpoint's own.

An endpoint that hangs, trickles or refuses fills at most its own lane, so every other endpoint's
deliveries go out as if it were not there. A lane holds PER_ENDPOINT attempts at once, and one
while its endpoint's last attempt failed, so a refused endpoint with a large backlog is probed
rather than flooded. Lanes are filled as soon as an attempt ends, and every poll interval.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from app.config import Settings
from app.db import connection
from app.webhooks import delivery, endpoints

log = logging.getLogger(__name__)

PER_ENDPOINT = 4  # attempts in flight at once to one endpoint, per worker process


class Lanes:
    """Deliveries in flight, per endpoint; `fill()` starts what is due where a lane has room."""

    def __init__(self, settings: Settings, per_endpoint: int = PER_ENDPOINT):
        self.settings = settings
        self.per_endpoint = per_endpoint
        self.ended = threading.Event()  # set whenever an attempt ends: its lane has room again
        self._lock = threading.Lock()
        self._senders: dict[int, ThreadPoolExecutor] = {}
        self._in_flight: dict[int, set[int]] = {}  # endpoint id -> delivery ids submitted and not yet done
        self._failing: set[int] = set()

    def room(self, endpoint_id: int) -> int:
        """How many more attempts this endpoint's lane takes now."""
        with self._lock:
            size = 1 if endpoint_id in self._failing else self.per_endpoint
            return size - len(self._in_flight.get(endpoint_id, ()))

    def fill(self) -> int:
        """Start the due deliveries of every live endpoint whose lane has room; returns how many were started."""
        started = 0
        with connection():
            live = [row.id for row in endpoints.live_cached()]
            for endpoint_id in live:
                room = self.room(endpoint_id)
                if room > 0:
                    started += self._start(endpoint_id, delivery.due(room + self._busy(endpoint_id), endpoint_id), room)
        self._close_lanes_except(set(live))
        return started

    def _busy(self, endpoint_id: int) -> int:
        with self._lock:
            return len(self._in_flight.get(endpoint_id, ()))

    def _start(self, endpoint_id: int, ids: list[int], room: int) -> int:
        with self._lock:
            flying = self._in_flight.setdefault(endpoint_id, set())
            fresh = [i for i in ids if i not in flying][:room]  # one not yet claimed by its sender is still due
            flying.update(fresh)
            senders = self._senders.get(endpoint_id)
            if senders is None:
                senders = self._senders[endpoint_id] = ThreadPoolExecutor(
                    max_workers=self.per_endpoint, thread_name_prefix=f"entitle-webhook-{endpoint_id}"
                )
        for delivery_id in fresh:
            senders.submit(self._attempt, endpoint_id, delivery_id)
        return len(fresh)

    def _attempt(self, endpoint_id: int, delivery_id: int) -> None:
        result = None
        try:
            result = delivery.attempt_now(delivery_id, self.settings)
        except Exception as exc:  # the database went away mid-attempt; the claim lapses and it is tried again
            log.warning("webhook delivery %s could not be attempted (%s)", delivery_id, type(exc).__name__)
        finally:
            with self._lock:
                self._in_flight.get(endpoint_id, set()).discard(delivery_id)
                if result == delivery.DELIVERED:
                    self._failing.discard(endpoint_id)
                elif result is not None:
                    self._failing.add(endpoint_id)
            self.ended.set()

    def _close_lanes_except(self, live: set[int]) -> None:
        with self._lock:
            gone = [i for i in self._senders if i not in live]
            closing = [self._senders.pop(i) for i in gone]
            for endpoint_id in gone:
                self._failing.discard(endpoint_id)
        for senders in closing:
            senders.shutdown(wait=False)

    def close(self) -> None:
        """Stop taking work; attempts in flight end by their deadline."""
        self._close_lanes_except(set())
