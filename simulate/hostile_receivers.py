"""Webhook receivers that misbehave at the wire: one that trickles its answer, one that hangs, one that refuses.

They stand in for an operator's backend gone wrong, for the tests and `make chaos`: each serves
(or refuses) on 127.0.0.1 on a free port, counts the connections it took, and `stop()` ends them all.
"""
from __future__ import annotations

import socket
import threading
import time

TRICKLE, HANG, REFUSE = "trickle", "hang", "refuse"
# What a trickling receiver sends, a byte at a time: a status line, then header lines that never end.
_TRICKLE_HEAD = b"HTTP/1.1 200 OK\r\n"
_TRICKLE_HEADER = b"X-Still-Coming: yes\r\n"


class HostileReceiver:
    """`mode` is TRICKLE (one byte every `every` seconds, never done), HANG (reads, never answers) or REFUSE."""

    def __init__(self, mode: str, every: float = 2.0):
        if mode not in (TRICKLE, HANG, REFUSE):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode, self.every = mode, every
        self.connections = 0  # taken so far
        self.held: list[float] = []  # seconds each connection stayed open until the sender gave up
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listener: socket.socket | None = None

    def start(self) -> "HostileReceiver":
        """Bind a free port; listen on it unless refusing (a bound port nobody listens on refuses connections)."""
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        if self.mode != REFUSE:
            self._listener.listen(64)
            threading.Thread(target=self._accept, name=f"hostile-{self.mode}", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        """The address to register as an endpoint."""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hooks"

    @property
    def holding(self) -> int:
        """Connections taken and still open (attempts the sender has not given up on yet)."""
        with self._lock:
            return len(self._open)

    def stop(self) -> None:
        """Close the port and every connection taken."""
        self._stopped.set()
        with self._lock:
            open_, self._open = list(self._open), set()
        for conn in open_:
            _close(conn)
        if self._listener is not None:
            _close(self._listener)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        began = time.monotonic()
        try:
            conn.settimeout(0.2)
            try:
                conn.recv(65536)  # the request (its body may follow; nothing here reads it)
            except OSError:
                pass
            if self.mode == TRICKLE:
                self._trickle(conn)
            else:
                self._hang(conn)
        finally:
            with self._lock:
                if conn in self._open and not self._stopped.is_set():
                    self.held.append(time.monotonic() - began)
                self._open.discard(conn)
            _close(conn)

    def _trickle(self, conn: socket.socket) -> None:
        data = _TRICKLE_HEAD
        conn.settimeout(self.every)
        while not self._stopped.is_set():
            for byte in data:
                if self._closed_by_sender(conn):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
            data = _TRICKLE_HEADER

    def _closed_by_sender(self, conn: socket.socket) -> bool:
        """Wait one interval for the sender to give up (True), else False: time for the next byte."""
        try:
            return conn.recv(65536) == b""
        except socket.timeout:
            return self._stopped.is_set()
        except OSError:
            return True

    def _hang(self, conn: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                if conn.recv(65536) == b"":
                    return  # the sender gave up
            except socket.timeout:
                continue
            except OSError:
                return


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
