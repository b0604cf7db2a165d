"""CPU time per process kind, read from /proc: what a unit of work costs the web, the workers and PostgreSQL.

A `CpuMeter` samples a changing set of processes (gunicorn's workers, Dramatiq's processes, the
PostgreSQL backends serving the bench database) and adds up the user + system time each spent
while it ran: a process that was there at the start counts from its value then, one born during
the run from zero. PostgreSQL backends that end between two samples lose their last slice, so
the pools' long-lived connections are what keeps the figure honest.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Iterable

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def postgres_backends(sql: Callable[..., list[tuple]], database: str) -> Callable[[], list[int]]:
    """A pid source: the backends connected to `database` (other than the one asking)."""
    def pids() -> list[int]:
        rows = sql("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
        return [row[0] for row in rows]

    return pids


class CpuMeter:
    """CPU seconds used by each named kind of process between `__enter__` and `__exit__`."""

    def __init__(self, kinds: dict[str, Callable[[], Iterable[int]]], interval: float = 0.1):
        self.kinds = kinds
        self.interval = interval
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = False

    def _sample(self) -> None:
        for kind, source in self.kinds.items():
            try:
                pids = list(source())
            except Exception:
                continue
            for pid in pids:
                used = cpu_seconds(pid)
                if used is None:
                    continue
                key = (kind, pid)
                self._first.setdefault(key, used if not self._started else 0.0)
                self._last[key] = used

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "CpuMeter":
        self._sample()
        self._started = True
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def seconds(self) -> dict[str, float]:
        """CPU seconds used per kind."""
        totals = {kind: 0.0 for kind in self.kinds}
        for (kind, pid), last in self._last.items():
            totals[kind] += max(0.0, last - self._first.get((kind, pid), 0.0))
        return totals

    def per_unit_ms(self, units: int) -> dict[str, float]:
        """Milliseconds of CPU per unit of work, per kind, and their sum as `all`."""
        per = {kind: 1000 * s / units for kind, s in self.seconds().items()} if units else {}
        per["all"] = sum(per.values())
        return per
