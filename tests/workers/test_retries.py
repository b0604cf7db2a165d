"""However many copies of a message exist, an event runs at most EVENT_MAX_RETRIES+1 times, and never once failed.

Given a handler that always fails, with EVENT_MAX_RETRIES=3, a sweeper sweeping every few
milliseconds and extra copies of the message in the queue, when a real worker runs them all,
then the row ends `failed` after at most 4 attempts and no copy runs it afterwards.
"""
from __future__ import annotations

import dramatiq
import pytest

from app import inbox
from app.config import load_settings
from app.models import Event
from tests.conftest import make_runtime
from tests.support.waiting import wait_for
from workers.runtime import PROVIDER_TABLES

PROVIDER = "testpay"
AGGRESSIVE_SWEEPER = {"SWEEP_INTERVAL": "0.02", "SWEEP_AFTER": "0.01", "SWEEP_LOST_AFTER": "0.01"}


@pytest.fixture
def runs():
    """A `testpay` `doomed` handler that always fails, and a `testpay` `paid` one that succeeds; each run recorded
    with the attempt its claim counted (read from the row in the run's own transaction)."""
    seen: list[tuple[str, int]] = []

    def doomed(event, context):
        seen.append((event.external_id, Event.get_by_id(event.id).attempts))
        raise RuntimeError("can never succeed")

    def paid(event, context):
        seen.append((event.external_id, Event.get_by_id(event.id).attempts))

    return seen, {"doomed": inbox.handler(doomed), "paid": inbox.handler(paid)}


@pytest.fixture
def handler_tables(runs):
    """The providers' tables and the test provider's."""
    return {**PROVIDER_TABLES, PROVIDER: runs[1]}


@pytest.fixture
def aggressive_runtime(env, database, handler_tables):
    """A runtime on the Redis broker with a sweeper that takes any row not finished within 10 ms."""
    runtime = make_runtime(load_settings(environ={**env, **AGGRESSIVE_SWEEPER}, env_file="/none"), handler_tables)
    yield runtime
    runtime.broker.flush_all()


def start_worker(broker) -> dramatiq.Worker:
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=20)
    worker.start()
    return worker


def test_copies_and_an_aggressive_sweeper_never_push_attempts_past_the_limit(aggressive_runtime, runs):
    runs, _ = runs
    aggressive_broker = aggressive_runtime.broker
    recorded = aggressive_runtime.accept(PROVIDER, "doomed-1", "doomed", {})
    event_id = recorded.event.id
    actor = aggressive_broker.get_actor("process_event")
    generation = Event.get_by_id(event_id).dispatch
    for _ in range(10):
        actor.send(event_id, generation)  # copies of the current message
        actor.send(event_id)  # and of a message from before generations existed

    worker = start_worker(aggressive_broker)
    try:
        wait_for(lambda: Event.get_by_id(event_id).status == "failed", timeout=30, message="the row failed")
        ran_before_it_failed = len(runs)
        for _ in range(5):
            actor.send(event_id, Event.get_by_id(event_id).dispatch)  # copies arriving after it failed
        worker.join()
    finally:
        worker.stop(timeout=5000)

    event = Event.get_by_id(event_id)
    assert event.status == "failed" and "can never succeed" in event.error
    assert 1 <= len(runs) <= event.attempts <= 4, "every run is a counted attempt, and there are at most 4"
    counted = [attempt for _, attempt in runs]
    assert counted == sorted(set(counted)) and max(counted) <= event.attempts, "each run counted an attempt of its own, in turn"
    assert len(runs) == ran_before_it_failed, "no copy ran the row once it was failed"


def test_a_message_of_an_older_generation_is_dropped_without_running_the_handler(broker, database, runs):
    runs, _ = runs
    row = inbox.record(PROVIDER, "paid-1", "paid", {}).event
    old = inbox.dispatch(row.id)
    current = inbox.dispatch(row.id)  # handed off again, say by the sweeper
    actor = broker.get_actor("process_event")
    actor.send(row.id, old)
    actor.send(row.id)  # a message with the id only is generation 0: older still

    worker = start_worker(broker)
    try:
        worker.join()
        assert runs == [] and Event.get_by_id(row.id).attempts == 0
        actor.send(row.id, current)
        wait_for(lambda: Event.get_by_id(row.id).status == "processed", message="the current message processed")
    finally:
        worker.stop(timeout=5000)
    assert runs == [("paid-1", 1)] and Event.get_by_id(row.id).attempts == 1


def test_a_message_queued_before_the_upgrade_still_runs_its_row(broker, database, runs):
    runs, _ = runs
    row = inbox.record(PROVIDER, "paid-2", "paid", {}).event
    broker.get_actor("process_event").send(row.id)  # as an older release sent it: the id only

    worker = start_worker(broker)
    try:
        wait_for(lambda: Event.get_by_id(row.id).status == "processed", message="the old message processed")
    finally:
        worker.stop(timeout=5000)
    assert runs == [("paid-2", 1)]
