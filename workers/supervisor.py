"""What `entitle worker` runs: worker processes (`workers.process`), each death logged with its cause and the process started again.

A child that dies (killed, out of memory, a crash) is started again after `RESTART_DELAY`
seconds; the others keep working meanwhile, and the sweeper queues again whatever the dead
one held. A child that cannot start (exit 2: bad configuration or plan file) or that dies
`MAX_DEATHS` times within `DEATH_WINDOW` seconds is not restarted: the supervisor stops the
others and exits 1, so the platform's own supervisor (Heroku, systemd, honcho) sees it. On
SIGTERM or SIGINT each child gets SIGTERM, finishes the messages in hand, and the
supervisor exits 0.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from workers.process import EXIT_BROKER_UNREACHABLE, EXIT_START_FAILED

log = logging.getLogger("entitle.supervisor")

RESTART_DELAY = 1.0
MAX_DEATHS = 5
DEATH_WINDOW = 60.0
STOP_TIMEOUT = 40.0  # seconds children get after SIGTERM (their messages in hand get 30) before SIGKILL


def cause_of(returncode: int) -> str:
    """Why a child ended, in words: the signal that killed it or what its exit code means."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (the kernel's out-of-memory killer sends this, as does `kill -9`)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    if returncode == EXIT_START_FAILED:
        return "could not start (exit 2: its configuration or plan file is invalid; see its log above)"
    if returncode == EXIT_BROKER_UNREACHABLE:
        return "could not reach the broker (exit 3)"
    return f"exited with code {returncode}"


@dataclass
class _Child:
    index: int
    process: subprocess.Popen | None = None
    restart_at: float | None = None
    deaths: deque = field(default_factory=deque)


class Supervisor:
    """Starts `count` children running `command`, restarts the ones that die, and stops them all on a signal."""

    def __init__(self, command: list[str], count: int, *, env: dict[str, str] | None = None,
                 restart_delay: float = RESTART_DELAY, max_deaths: int = MAX_DEATHS, window: float = DEATH_WINDOW):
        self.command = command
        self.children = [_Child(i) for i in range(1, count + 1)]
        self.env = env
        self.restart_delay = restart_delay
        self.max_deaths = max_deaths
        self.window = window
        self.stopping = False

    def _start(self, child: _Child) -> None:
        child.process = subprocess.Popen(self.command, env=self.env)
        child.restart_at = None
        log.info("worker process %d started (pid %d)", child.index, child.process.pid)

    def _stop_requested(self, signum, _frame) -> None:
        if not self.stopping:
            log.info("%s received: stopping the worker processes", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        """Supervise until a signal (exit 0) or a child that cannot be kept running (exit 1)."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop_requested)
        for child in self.children:
            self._start(child)
        code = 0
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                if child.process is None:
                    if child.restart_at is not None and now >= child.restart_at:
                        self._start(child)
                    continue
                returncode = child.process.poll()
                if returncode is None or self.stopping:
                    continue
                reason = self._died(child, returncode, now)
                if reason:
                    log.critical("not restarting worker process %d: %s; stopping the worker (exit 1)", child.index, reason)
                    self.stopping, code = True, 1
                    break
            time.sleep(0.2)
        self._stop_all()
        return code

    def _died(self, child: _Child, returncode: int, now: float) -> str | None:
        """Log a child's death with its cause and schedule its restart; the reason not to restart it, if any."""
        pid = child.process.pid
        child.process = None
        _forget_live_metrics(pid)
        log.error("worker process %d (pid %d) %s", child.index, pid, cause_of(returncode))
        if returncode == EXIT_START_FAILED:
            return "starting it again cannot help"
        child.deaths.append(now)
        while child.deaths and child.deaths[0] < now - self.window:
            child.deaths.popleft()
        if len(child.deaths) >= self.max_deaths:
            return f"it died {len(child.deaths)} times within {self.window:.0f} s"
        child.restart_at = now + self.restart_delay
        log.info("restarting worker process %d in %.0f s", child.index, self.restart_delay)
        return None

    def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in running:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process (pid %d) did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
        log.info("worker stopped")


def _forget_live_metrics(pid: int) -> None:
    """Drop a dead child's live gauges from the metrics directory (prometheus-client's multiprocess mode)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(pid, directory)
    except OSError:
        pass


def child_command(threads: int, queues: tuple[str, ...]) -> list[str]:
    """The command line of one worker process."""
    return [sys.executable, "-m", "workers.process", "--threads", str(threads), "--queues", ",".join(queues)]


def supervise(processes: int, threads: int, queues: tuple[str, ...], *, all_queues: tuple[str, ...]) -> int:
    """Run `processes` worker processes of `threads` threads over `queues` (empty: all), supervised; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    log.info(
        "entitle worker: %d process(es) x %d thread(s) consuming %s. This process supervises them: a process that dies "
        "is logged with its cause and started again; one that cannot start, or dies %d times within %.0f s, stops "
        "the worker with exit 1 for the platform to restart it.",
        processes, threads, ", ".join(queues or all_queues), MAX_DEATHS, DEATH_WINDOW,
    )
    return Supervisor(child_command(threads, queues), processes).run()
