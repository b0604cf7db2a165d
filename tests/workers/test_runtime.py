"""The runtime is the one place a process is wired: importing connects to nothing, and every hand-off routes by the tables.

Given a bot command in the inbox, when the sweeper or `entitle events replay` hands it to the
broker, then a worker that listens only to the `sessions` queue runs it.
"""
from __future__ import annotations

import subprocess
import sys
import time

import dramatiq
import pytest

from app import inbox
from app.models import Event, EventStatus
from tests.conftest import ROOT
from tests.support.waiting import wait_for
from workers.sweeper import sweep_once

# A routable address nobody answers on: a connection attempt would hang, not fail at once.
UNREACHABLE = "10.255.255.1"
IMPORTED = "workers, webapp, app.inbox, cli"
COMMAND = {"update_id": 5, "message": {"message_id": 1, "date": 1700000000, "chat": {"id": 77, "type": "private"},
                                       "from": {"id": 77, "is_bot": False, "first_name": "Ann"}, "text": "/status"}}


@pytest.mark.parametrize("configured", [False, True], ids=["no environment at all", "unreachable services"])
def test_importing_the_packages_opens_no_connection_and_creates_no_file(tmp_path, configured):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    if configured:
        env.update(DATABASE_URL=f"postgresql://nobody@{UNREACHABLE}:5432/none", BROKER_URL=f"redis://{UNREACHABLE}:6379/0")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", f"import {IMPORTED}; from dramatiq import broker; print('imported', broker.global_broker)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "imported None", "an import set up a broker"
    assert time.monotonic() - started < 10, "an import waited on the network"
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "an import created a file"


@pytest.fixture
def sessions_worker(runtime, database):
    """A worker that takes messages from the `sessions` queue only."""
    worker = dramatiq.Worker(runtime.broker, queues={"sessions"}, worker_threads=1, worker_timeout=50)
    worker.start()
    yield worker
    worker.stop(timeout=5000)


def done(event_id: int) -> bool:
    return Event.get_by_id(event_id).status in EventStatus.DONE


def test_a_swept_bot_command_runs_on_the_sessions_queue(runtime, sessions_worker):
    # Given a command whose hand-off never happened (the broker was down when it arrived)
    row = inbox.record("telegram", "update:5", "command", COMMAND).event

    # When the sweeper takes it
    time.sleep(runtime.settings.sweep_after + 0.1)
    assert sweep_once(runtime) == 1

    # Then the sessions-only worker runs it (no bot token here, so it is ignored, having been run once)
    wait_for(lambda: done(row.id), timeout=20, message="the command run from the sessions queue")
    event = Event.get_by_id(row.id)
    assert event.status == "ignored" and event.attempts == 1 and "TELEGRAM_BOT_TOKEN" in event.error


def test_a_replayed_bot_command_runs_on_the_sessions_queue(runtime, sessions_worker, cli):
    # Given a command that failed
    row = inbox.record("telegram", "update:6", "command", COMMAND, status=EventStatus.FAILED).event

    # When an operator replays it with a broker configured
    result = cli("events", "replay", str(row.id), "--no-wait")
    assert result.exit_code == 0, result.output
    assert f"event {row.id}: queued" in result.output

    # Then the sessions-only worker runs it
    wait_for(lambda: done(row.id), timeout=20, message="the replayed command run from the sessions queue")
    event = Event.get_by_id(row.id)
    assert event.status == "ignored" and event.attempts == 1
