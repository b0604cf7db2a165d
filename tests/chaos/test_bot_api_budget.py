"""10,000 reminders queued at once, sent by two worker processes through one Bot API budget: none refused by a Bot API that enforces Telegram's limits."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from app.clock import iso, utcnow
from app.db import transaction
from app.models import EntitlementState, Event, Reminder, User
from tests.conftest import DATABASE_URL, ROOT
from tests.support import processes
from tests.support.access import access_env
from tests.support.telegram import most_in_one_second
from tests.support.waiting import wait_for

# 10,000 (the size) takes over 500 s at the default 20 messages/s; BUDGET_REMINDERS sets it, the suite's default is a burst of 500
# (about 20 s of sending, long enough for deferred messages to come back late in bunches, which is what once broke the limit).
REMINDERS = int(os.environ.get("BUDGET_REMINDERS", "500"))
FIRST_USER = 9_000_000


def _queued_reminders(count: int) -> None:
    """`count` holders of premium whose end is two days away, each with a reminder queued in the inbox now (for the workers' sweeper)."""
    now = utcnow()
    ends = now + timedelta(days=2)
    with transaction():
        User.insert_many([{"telegram_id": FIRST_USER + i, "first_name": f"Holder{i}"} for i in range(count)]).execute()
    users = {u.id: u.telegram_id for u in User.select(User.id, User.telegram_id).where(User.telegram_id >= FIRST_USER)}
    ids = sorted(users)
    for start in range(0, count, 1000):
        chunk = ids[start:start + 1000]
        with transaction():
            EntitlementState.insert_many(
                [{"user": i, "entitlement": "premium", "holding": True, "ends_at": ends} for i in chunk]).execute()
            Reminder.insert_many(
                [{"user": i, "entitlement": "premium", "ends_at": ends, "days": 3, "due_at": now, "status": "queued"} for i in chunk]
            ).execute()
    reminders = list(Reminder.select(Reminder.id, Reminder.user).where(Reminder.status == "queued"))
    for start in range(0, count, 1000):
        with transaction():
            Event.insert_many([
                {"provider": "access", "external_id": f"reminder:{r.id}", "type": "reminder", "subject": users[r.user_id],
                 "payload": {"reminder": r.id, "user": users[r.user_id], "entitlement": "premium", "ends_at": iso(ends), "days": 3}}
                for r in reminders[start:start + 1000]
            ]).execute()


@pytest.mark.skipif(not DATABASE_URL.startswith("postgres"), reason="two processes writing 10,000 events need PostgreSQL; SQLite serialises every writer")
def test_ten_thousand_reminders_queued_at_once_stay_within_telegrams_limits(env, database, telegram_api, tmp_path):
    # Given a Bot API that refuses with 429 past Telegram's published limits, and 10,000 reminders queued at once
    telegram_api.enforce_limits(per_second=30, per_chat_per_second=1)
    worker_env = {**os.environ, **access_env(env, telegram_api, tmp_path), "BROKER_NAMESPACE": f"entitle-budget-{uuid.uuid4().hex[:8]}"}
    worker_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    _queued_reminders(REMINDERS)

    # When one `entitle worker` with two processes sends them
    log = open(tmp_path / "worker.log", "w")
    began = time.monotonic()
    worker = processes.start([str(Path(sys.executable).with_name("entitle")), "worker", "--processes", "2", "--threads", "4"],
                             cwd=ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT, stop_signal=signal.SIGTERM)
    try:
        def sent() -> bool:
            assert worker.poll() is None, "the worker exited"
            return Event.select().where((Event.type == "reminder") & (Event.status == "processed")).count() == REMINDERS

        wait_for(sent, timeout=REMINDERS / 20 * 3, interval=1, message="every reminder sent")
        took = time.monotonic() - began
    finally:
        processes.end(worker)
        log.close()

    # Then Telegram never had to refuse a message (the stand-in records a refused call too), and each holder got one reminder
    messages = [c for c in telegram_api.calls_to("sendMessage") if int(c.params["chat_id"]) >= FIRST_USER]
    per_chat: dict[str, list[float]] = {}
    for call in messages:
        per_chat.setdefault(call.params["chat_id"], []).append(call.at)
    figures = (f"{len(messages)} sendMessage for {REMINDERS} reminders, {telegram_api.refused_for_rate} refused for rate, "
               f"at most {most_in_one_second([c.at for c in messages])} in one second and "
               f"{max(most_in_one_second(times) for times in per_chat.values())} to one chat, all sent in {took:.1f} s")
    print(figures)
    assert telegram_api.refused_for_rate == 0, figures
    assert len(messages) == REMINDERS, figures
    assert len(per_chat) == REMINDERS, figures
    assert not Event.select().where((Event.type == "reminder") & (Event.status != "processed")).exists()
