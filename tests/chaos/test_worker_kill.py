"""A worker process SIGKILLed while real payments flow: after a restart every payment is granted once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

from app.config import load_settings
from tests.support.chaos import all_granted, clean, payments_for, post, tally
from tests.conftest import ROOT
from tests.support import processes
from tests.support.waiting import wait_for


def start_worker(worker_env: dict) -> subprocess.Popen:
    return processes.start(
        [sys.executable, "-m", "dramatiq", "workers.main", "--processes", "1", "--threads", "2"],
        cwd=ROOT, env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stop_signal=signal.SIGTERM,
    )


def test_payments_survive_a_sigkilled_worker_and_are_granted_once_after_the_restart(env, database, stripe_api):
    from webapp import create_app

    worker_env = {**os.environ, **env, "BROKER_NAMESPACE": f"entitle-chaos-{uuid.uuid4().hex[:8]}", "PYTHONPATH": str(ROOT)}
    settings = load_settings(environ=worker_env, env_file="/none")
    app = create_app(settings)
    client = app.test_client()
    deliveries = payments_for(app, 40, first_user=42_000_000, stripe_api=stripe_api)
    first = start_worker(worker_env)
    second = None
    try:
        # Given a worker busy with the first half of the payments
        statuses = [post(client, d) for d in deliveries[:20]]
        wait_for(lambda: tally(deliveries[:20], statuses).grants_present >= 1, timeout=60, message="a first grant")

        # When it is killed with SIGKILL, more payments arrive, and a new worker starts
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        statuses += [post(client, d) for d in deliveries[20:]]
        second = start_worker(worker_env)

        # Then every payment is granted, none twice
        wait_for(lambda: all_granted(deliveries), timeout=60, message="every payment granted after the restart")
    finally:
        for proc in (first, second):
            if proc is not None:
                processes.end(proc)
        app.extensions["entitle"].broker.flush_all()
    assert statuses == [200] * 40
    assert tally(deliveries, statuses) == clean(40)
