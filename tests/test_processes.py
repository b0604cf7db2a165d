"""Every process a test starts is ended, even one that ignores the signal meant to stop it, with its children."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from simulate.redis_server import free_port
from tests.support import processes
from tests.support.waiting import wait_for

# A server that ignores SIGINT and SIGTERM, as a hung `entitle run` would, with a child of its own.
STUBBORN = """
import signal, socket, subprocess, sys, time
for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print(child.pid, flush=True)
while True:
    time.sleep(1)
"""


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"  # a zombie has ended


def start_stubborn() -> tuple[subprocess.Popen, int, int]:
    port = free_port()
    proc = processes.start([sys.executable, "-c", STUBBORN, str(port)], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    wait_for(lambda: listening(port), timeout=10, message="the stubborn server")
    return proc, child, port


def test_a_process_that_ignores_its_stop_signal_is_killed_after_the_timeout_with_its_children():
    proc, child, port = start_stubborn()

    processes.end(proc, timeout=1)

    assert proc.returncode == -9
    assert not listening(port)
    wait_for(lambda: not alive(child), timeout=5, message="its child ended too")


def test_whatever_a_test_left_running_is_ended_after_it():
    proc, child, port = start_stubborn()

    left = processes.end_all(timeout=1)

    assert left == [proc] and proc.returncode == -9
    assert not listening(port)
    wait_for(lambda: not alive(child), timeout=5, message="its child ended too")


def test_a_process_that_stops_on_its_signal_keeps_its_exit_status_and_output():
    proc = processes.start([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "up\n"

    out = processes.end(proc)

    assert proc.returncode != -9 and proc.returncode is not None
    assert out == ""
