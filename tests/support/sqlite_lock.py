"""Seeing, from any thread, whether a SQLite database file is write-locked by another connection."""
from __future__ import annotations

import sqlite3
import threading


def write_locked(path: str) -> bool:
    """True when another connection holds the write lock of the SQLite file at `path`."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return True
        raise
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


class WriteLockProbe:
    """An `on_request` hook for the fake Stripe API: notes every request and those made while `path` was write-locked."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen: list[str] = []
        self.locked: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, call) -> None:
        locked = write_locked(self.path)
        with self._lock:
            self.seen.append(f"{call.method} {call.path}")
            if locked:
                self.locked.append(f"{call.method} {call.path}")

    def clear(self) -> None:
        """Forget what was seen so far."""
        with self._lock:
            self.seen.clear()
            self.locked.clear()
