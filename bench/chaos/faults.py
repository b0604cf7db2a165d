"""The faults: kill the workers, stop Redis, restart PostgreSQL, each while payments arrive."""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from bench.services import wait_postgres


def postgres_cluster() -> tuple[str, str]:
    """(version, name) of the machine's PostgreSQL cluster, as pg_ctlcluster names it."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    return version, "main"


def restart_postgres() -> float:
    """Restart the machine's PostgreSQL; returns the seconds until it accepts connections again."""
    version, name = postgres_cluster()
    started = time.monotonic()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "fast"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_postgres()
    return time.monotonic() - started


class Repeating:
    """Runs `action` every `interval` seconds in a thread until stopped; counts how often it ran."""

    def __init__(self, action, interval: float, first_after: float = 2.0):
        self.action, self.interval, self.first_after = action, interval, first_after
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        if self._stop.wait(self.first_after):
            return
        while not self._stop.is_set():
            try:
                self.action()
                self.count += 1
            except BaseException as exc:  # reported by the scenario
                self.error = exc
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> "Repeating":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)


class Once:
    """Runs `action` once after `after` seconds in a thread; keeps its result."""

    def __init__(self, action, after: float):
        self.action, self.after = action, after
        self.result = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        time.sleep(self.after)
        try:
            self.result = self.action()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> "Once":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join(120)
