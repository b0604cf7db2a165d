"""Faults: the broker stops, a worker is killed. Nothing accepted is lost; nothing is granted twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import dramatiq
import pytest

import workers
from app.config import load_settings
from app.models import Event, EventLog, Grant
from tests.conftest import ROOT
from tests.support import slow_handlers  # noqa: F401  (registers testpay/slow_paid here too)
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for


def all_processed(n: int) -> bool:
    return Event.select().where(Event.status == "processed").count() == n


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.stop()


def test_with_redis_stopped_recording_succeeds_and_the_sweeper_delivers_after_it_returns(env, database, own_redis):
    settings = load_settings(environ={**env, "BROKER_URL": own_redis.url}, env_file="/none")
    broker = workers.setup(settings)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        own_redis.stop()
        recorded = workers.accept("testpay", "during-outage", "slow_paid", {"user": 31, "sleep": 0})
        assert recorded.created
        event = Event.get(Event.external_id == "during-outage")
        assert event.status == "pending"
        assert "enqueue_failed" in [h.action for h in EventLog.select().where(EventLog.event == event)]

        own_redis.start()
        wait_for(lambda: Event.get(Event.external_id == "during-outage").status == "processed", timeout=30,
                 message="the sweeper to deliver the event once Redis is back")
        assert Grant.select().where(Grant.reference == "during-outage").count() == 1
    finally:
        worker.stop(timeout=5000)
        workers.setup(load_settings(environ=env, env_file="/none"))


def start_worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "workers", "tests.support.slow_handlers", "--processes", "1", "--threads", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def test_a_worker_killed_mid_message_loses_nothing_and_grants_once(env, database):
    namespace = f"entitle-kill-{uuid.uuid4().hex[:8]}"
    worker_env = {**os.environ, **env, "BROKER_NAMESPACE": namespace, "PYTHONPATH": str(ROOT)}
    settings = load_settings(environ=worker_env, env_file="/none")
    workers.setup(settings)
    first = start_worker(worker_env)
    try:
        for i in range(12):
            workers.accept("testpay", f"kill-{i}", "slow_paid", {"user": 100 + i, "sleep": 0.3})
        wait_for(lambda: Event.select().where(Event.status == "processed").count() >= 1, timeout=60,
                 message="the first worker to process something")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert not all_processed(12), "the worker finished everything before it could be killed"

        second = start_worker(worker_env)
        try:
            wait_for(lambda: all_processed(12), timeout=90, message="every event processed after the restart")
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(20)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        broker = workers.current_broker()
        broker.flush_all()
        workers.setup(load_settings(environ=env, env_file="/none"))
    for i in range(12):
        assert Grant.select().where(Grant.reference == f"kill-{i}").count() == 1
    assert Grant.select().count() == 12
