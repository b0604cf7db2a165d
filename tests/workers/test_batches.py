"""A worker that finds a backlog takes further rows of its queue in the same transaction (PostgreSQL), each under a
savepoint of its own; on SQLite every message runs its own row, one at a time.

Given rows recorded and handed off while no worker ran (a backlog), when one message is processed
as its actor processes it, then on PostgreSQL the rows of later users are handled in its transaction,
a row whose handler fails is left pending and untouched for its own message, which runs it alone, and
the messages of the rows a batch handled change nothing.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from app import db, entitlements, inbox, users
from app.config import load_settings
from app.models import Event, Grant
from tests.conftest import ROOT, make_runtime
from tests.support import processes
from tests.support.slow_handlers import TABLES
from tests.support.waiting import wait_for
from workers.runtime import PROVIDER_TABLES, build_runtime

PROVIDER = "batchpay"


@pytest.fixture
def runs():
    """A `batchpay` `paid` handler that grants, failing the first time for a payload that says so; each run recorded."""
    seen: list[str] = []

    def paid(event, context):
        seen.append(event.external_id)
        if event.payload.get("fail_once") and seen.count(event.external_id) == 1:
            raise RuntimeError("the payment's first run fails")
        user = users.ensure_user(event.payload["user"])
        entitlements.grant(user, "premium", source=PROVIDER, reference=event.external_id, days=30)

    return seen, {"paid": inbox.handler(paid)}


@pytest.fixture
def handler_tables(runs):
    """The providers' tables and the test provider's."""
    return {**PROVIDER_TABLES, PROVIDER: runs[1]}


@pytest.fixture
def runtime(env, database, handler_tables):
    """A runtime whose batches are bounded by rows only (a busy test machine must not end one early)."""
    built = make_runtime(load_settings(environ={**env, "BATCH_SECONDS": "30"}, env_file="/none"), handler_tables)
    yield built
    built.broker.flush_all()


def backlog(runtime, count: int, failing: int) -> list[Event]:
    """`count` payments of distinct users recorded and handed off with no worker running, the `failing`-th failing once."""
    for i in range(count):
        payload = {"user": 700 + i, "fail_once": i == failing}
        runtime.accept(PROVIDER, f"batch-{i}", "paid", payload, subject=700 + i)
    time.sleep(inbox.BACKLOG_AFTER.total_seconds() + 0.1)  # the messages have waited: a backlog
    return list(Event.select().order_by(Event.id))


def run(runtime, row: Event) -> str:
    """Process one row's message as its actor does."""
    current = Event.get_by_id(row.id)
    return runtime.process(current.id, current.dispatch)


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="batches are PostgreSQL's")
def test_a_batch_in_which_one_payment_fails_commits_the_others_and_retries_the_failed_one_alone(runtime, runs):
    seen, _ = runs
    rows = backlog(runtime, 5, failing=2)

    # When the first row's message is processed
    assert run(runtime, rows[0]) == "processed"

    # Then the rows after it were handled in its transaction, except the one that failed, left as it was
    after = {e.external_id: (e.status, e.attempts, e.error) for e in Event.select()}
    assert after["batch-2"] == ("pending", 0, None)
    assert all(after[f"batch-{i}"] == ("processed", 1, None) for i in (0, 1, 3, 4))
    assert sorted(g.reference for g in Grant.select()) == ["batch-0", "batch-1", "batch-3", "batch-4"]

    # When the failed row's own message comes, it runs alone and grants
    assert run(runtime, rows[2]) == "processed"
    assert Grant.select().where(Grant.reference == "batch-2").count() == 1
    assert seen.count("batch-2") == 2 and seen.count("batch-3") == 1

    # And the messages of the rows the batch handled change nothing
    assert [run(runtime, rows[i]) for i in (1, 3, 4)] == ["processed"] * 3
    assert [seen.count(f"batch-{i}") for i in (1, 3, 4)] == [1, 1, 1]
    assert Grant.select().count() == 5


def test_each_message_runs_its_own_row_when_the_database_cannot_batch(runtime, runs):
    if db.is_postgres():
        pytest.skip("SQLite takes one row at a time")
    seen, _ = runs
    rows = backlog(runtime, 3, failing=-1)

    assert run(runtime, rows[0]) == "processed"

    assert seen == ["batch-0"]
    assert [e.status for e in Event.select().order_by(Event.id)] == ["processed", "pending", "pending"]


def start_worker(env: dict) -> subprocess.Popen:
    return processes.start(
        [sys.executable, "-m", "dramatiq", "tests.support.slow_worker", "--processes", "1", "--threads", "4"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stop_signal=signal.SIGTERM,
    )


def test_two_workers_draining_the_same_backlog_grant_each_payment_once(env, database):
    namespace = f"entitle-batch-{uuid.uuid4().hex[:8]}"
    worker_env = {**os.environ, **env, "BROKER_NAMESPACE": namespace, "PYTHONPATH": str(ROOT)}
    runtime = build_runtime(load_settings(environ=worker_env, env_file="/none"), tables=TABLES)
    for i in range(60):  # two payments a user for some, so batches meet users already locked elsewhere
        runtime.accept("testpay", f"drain-{i}", "slow_paid", {"user": 800 + i % 45, "sleep": 0}, subject=800 + i % 45)
    time.sleep(0.2)
    workers = [start_worker(worker_env), start_worker(worker_env)]
    try:
        wait_for(lambda: Event.select().where(Event.status == "processed").count() == 60, timeout=120,
                 message="every payment processed by the two workers")
    finally:
        for worker in workers:
            processes.end(worker)
        runtime.broker.flush_all()
    assert [e.attempts for e in Event.select()] == [1] * 60
    for i in range(60):
        assert Grant.select().where(Grant.reference == f"drain-{i}").count() == 1
    assert Grant.select().count() == 60
