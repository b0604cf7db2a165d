"""A message lost with Redis is run again within a minute; a backlog still in its queue is never queued twice."""
from __future__ import annotations

import time

import dramatiq

import pytest

from app.config import load_settings
from app.models import Event
from tests.support.slow_handlers import TABLES
from tests.support.waiting import wait_for
from workers.broker import queue_depths
from workers.sweeper import sweep_once


def test_the_default_timings_recover_a_lost_message_within_a_minute():
    defaults = load_settings(environ={}, env_file="/nonexistent/.env")
    # A lost row is found by the first sweep after it has waited SWEEP_LOST_AFTER (or SWEEP_AFTER
    # for a failed hand-off), so the worst case is the longer of the two plus one interval.
    worst = max(defaults.sweep_after, defaults.sweep_lost_after) + defaults.sweep_interval
    assert worst < 60, f"a lost message waits up to {worst} s"


@pytest.fixture
def handler_tables():
    """The providers' tables and the slow `testpay` one."""
    return TABLES


def test_a_waiting_backlog_is_left_alone_and_messages_flushed_from_redis_run_again(runtime, broker, database, settings):
    for i in range(6):
        runtime.accept("testpay", f"backlog-{i}", "slow_paid", {"user": 200 + i, "sleep": 0})
    rows = list(Event.select().order_by(Event.id))
    assert queue_depths(broker, runtime.queues())["payments"] == 6

    # Given no worker for longer than SWEEP_LOST_AFTER (2 s in the tests), the backlog still waits in Redis


    time.sleep(settings.sweep_lost_after + 0.5)
    assert sweep_once(runtime) == 0, "every waiting row still has its message"
    assert queue_depths(broker, runtime.queues())["payments"] == 6
    assert [Event.get_by_id(r.id).dispatch for r in rows] == [1] * 6

    # When Redis loses the messages (a flush, a restart without persistence)
    broker.flush_all()

    # Then a worker's sweeper hands each row over again once, and each is granted
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        wait_for(lambda: Event.select().where(Event.status == "processed").count() == 6, timeout=60,
                 message="every lost row processed")
    finally:
        worker.stop(timeout=5000)
    assert [Event.get_by_id(r.id).dispatch for r in rows] == [2] * 6
