"""Processes a test starts: each in a session of its own, and always ended, whatever happens.

`start` launches a command in a new session (so its children share its process group);
`end` sends the group its stop signal, waits, then SIGKILLs the group after a timeout.
`running` does both around a `with` block. Whatever a test forgot, the autouse fixture in
tests/conftest.py ends after the test (`end_all`), so no test leaves a server listening.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Iterator

STOP_TIMEOUT = 20.0
_started: list[subprocess.Popen] = []


def start(args, *, stop_signal: int = signal.SIGINT, **popen_kwargs) -> subprocess.Popen:
    """Start `args` in a new session, remembered so it is ended after the test; `stop_signal` is what `end` sends first."""
    popen_kwargs.setdefault("preexec_fn", _default_stop_signals)
    proc = subprocess.Popen(args, start_new_session=True, **popen_kwargs)
    proc.stop_signal = stop_signal
    _started.append(proc)
    return proc


def _default_stop_signals() -> None:
    # A suite started in the background of a non-interactive shell inherits SIGINT ignored, and Python
    # then never turns SIGINT into KeyboardInterrupt: the child must stop on its stop signal all the same.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def end(proc: subprocess.Popen, signum: int | None = None, timeout: float = STOP_TIMEOUT) -> str:
    """End `proc` and its group: `signum` (default its stop signal), then SIGKILL after `timeout` s; its remaining output."""
    if proc.poll() is None:
        _signal_group(proc, signum if signum is not None else getattr(proc, "stop_signal", signal.SIGTERM))
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        out, _ = proc.communicate()
    except ValueError:  # its output pipe was closed by the test already
        out = None
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    _signal_group(proc, signal.SIGKILL)  # whatever it started and left behind in its group
    with contextlib.suppress(ValueError):
        _started.remove(proc)
    return out or ""


@contextlib.contextmanager
def running(args, **kwargs) -> Iterator[subprocess.Popen]:
    """`start(args, **kwargs)` for the duration of a `with` block, then `end` it."""
    proc = start(args, **kwargs)
    try:
        yield proc
    finally:
        end(proc)


def end_all(timeout: float = 5.0) -> list[subprocess.Popen]:
    """End every process started here and not ended yet; the ones that were still running."""
    left = [proc for proc in list(_started) if proc.poll() is None]
    for proc in list(_started):
        end(proc, timeout=timeout)
    return left
