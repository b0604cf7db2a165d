"""A worker killed in the middle of a slow handler loses nothing and grants once.

(Redis stopping mid-run is proven with real webhooks in tests/chaos/test_redis_stop.py.)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid


from app.config import load_settings
from app.models import Event, Grant
from tests.conftest import ROOT
from tests.support.slow_handlers import TABLES
from workers.runtime import build_runtime
from tests.support import processes
from tests.support.waiting import wait_for


def all_processed(n: int) -> bool:
    return Event.select().where(Event.status == "processed").count() == n


def start_worker(env: dict) -> subprocess.Popen:
    return processes.start(
        [sys.executable, "-m", "dramatiq", "tests.support.slow_worker", "--processes", "1", "--threads", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stop_signal=signal.SIGTERM,
    )


def test_a_worker_killed_mid_message_loses_nothing_and_grants_once(env, database):
    namespace = f"entitle-kill-{uuid.uuid4().hex[:8]}"
    worker_env = {**os.environ, **env, "BROKER_NAMESPACE": namespace, "PYTHONPATH": str(ROOT)}
    settings = load_settings(environ=worker_env, env_file="/none")
    runtime = build_runtime(settings, tables=TABLES)
    first = start_worker(worker_env)
    try:
        for i in range(12):
            runtime.accept("testpay", f"kill-{i}", "slow_paid", {"user": 100 + i, "sleep": 0.3})
        wait_for(lambda: Event.select().where(Event.status == "processed").count() >= 1, timeout=60,
                 message="the first worker to process something")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert not all_processed(12), "the worker finished everything before it could be killed"

        second = start_worker(worker_env)
        try:
            wait_for(lambda: all_processed(12), timeout=90, message="every event processed after the restart")
        finally:
            processes.end(second)
    finally:
        processes.end(first, signal.SIGKILL)
        runtime.broker.flush_all()
    for i in range(12):
        assert Grant.select().where(Grant.reference == f"kill-{i}").count() == 1
    assert Grant.select().count() == 12
