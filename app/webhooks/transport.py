"""POST with a wall deadline: an attempt ends within its timeout whatever the receiver does.

`requests`' own timeout bounds each connect and each read, not the whole: a receiver that sends
one header byte every few seconds keeps such a request open for as long as it likes. Here every
socket an attempt opens is watched by one thread per process, which shuts it down when the
attempt's deadline passes; the blocked connect, TLS handshake, send or read then ends at once.
Name resolution happens before there is a socket to watch; the system resolver bounds it.
"""
from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class DeadlinePassed(requests.Timeout):
    """The attempt was cut at its deadline."""


@dataclass
class _Watched:
    deadline: float
    sock: socket.socket | None  # a duplicate of the attempt's socket: shutting it down ends the original's I/O too
    cut: bool = False
    order: int = field(default_factory=itertools.count().__next__)

    def __lt__(self, other: "_Watched") -> bool:
        return (self.deadline, self.order) < (other.deadline, other.order)


class _Watchdog:
    """Shuts down each watched socket whose deadline has passed."""

    def __init__(self) -> None:
        self._wakeup = threading.Condition()
        self._heap: list[_Watched] = []
        self._pid: int | None = None

    def watch(self, sock: socket.socket, deadline: float) -> _Watched:
        """Cut `sock` at `deadline` (a `time.monotonic()` value) unless forgotten first."""
        entry = _Watched(deadline, sock.dup())
        with self._wakeup:
            if self._pid != os.getpid():  # first use in this process, or a fork inherited a copy without its thread
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="entitle-webhook-deadlines", daemon=True).start()
            heapq.heappush(self._heap, entry)
            self._wakeup.notify()
        if entry.deadline <= time.monotonic():
            self._cut(entry)
        return entry

    def forget(self, entry: _Watched) -> bool:
        """Stop watching; True when the deadline had already cut the socket."""
        with self._wakeup:
            sock, entry.sock = entry.sock, None
        if sock is not None:
            sock.close()
        return entry.cut

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while True:
                    while self._heap and self._heap[0].sock is None:  # forgotten: the attempt ended in time
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._wakeup.wait()
                        continue
                    wait = self._heap[0].deadline - time.monotonic()
                    if wait <= 0:
                        entry = heapq.heappop(self._heap)
                        break
                    self._wakeup.wait(wait)
            self._cut(entry)

    def _cut(self, entry: _Watched) -> None:
        with self._wakeup:
            if entry.sock is None or entry.cut:
                return
            entry.cut = True
            try:
                entry.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the other side


_watchdog = _Watchdog()
_attempt = threading.local()  # the deadline of the attempt running in this thread, and what it watches


class _WatchedConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attempt.watched.append(_watchdog.watch(sock, _attempt.deadline))
        return sock


class _WatchedTLSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # before the handshake, which the watch therefore covers
        _attempt.watched.append(_watchdog.watch(sock, _attempt.deadline))
        return sock


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedTLSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedTLSConnection


class _DeadlineAdapter(HTTPAdapter):
    """Every connection it opens, directly or through a proxy, is watched against the attempt's deadline."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedTLSPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedTLSPool}
        return manager


def post_status(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST and return the answer's status code, all within `timeout` seconds; redirects are not followed.

    Raises DeadlinePassed when the deadline cut the attempt, else `requests`' own errors.
    """
    _attempt.deadline = time.monotonic() + timeout
    _attempt.watched = []
    session = requests.Session()
    session.mount("http://", _DeadlineAdapter())
    session.mount("https://", _DeadlineAdapter())
    try:
        with session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True) as answer:
            return answer.status_code
    except requests.RequestException as exc:
        if any(entry.cut for entry in _attempt.watched):
            raise DeadlinePassed(f"no answer within {timeout:g}s") from exc
        raise
    finally:
        session.close()
        for entry in _attempt.watched:
            _watchdog.forget(entry)
        _attempt.watched = []
