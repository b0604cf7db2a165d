"""An entitlement's end is noticed by the workers within a minute and ended exactly once, however many run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from app.config import load_settings
from app.models import EntitlementTransition, Event
from tests.support.access import CHAT_A, CHAT_B
from tests.conftest import ROOT, make_runtime
from tests.support import processes
from tests.support.waiting import wait_for


def start_worker(env: dict) -> subprocess.Popen:
    return processes.start(
        [sys.executable, "-m", "dramatiq", "workers.main", "--processes", "1", "--threads", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stop_signal=signal.SIGTERM,
    )


def test_a_short_grant_expires_and_is_removed_once_with_two_worker_processes(env, cli, telegram_api):
    namespace = f"entitle-expiry-{uuid.uuid4().hex[:8]}"
    worker_env = {**os.environ, **env, "BROKER_NAMESPACE": namespace, "PYTHONPATH": str(ROOT)}
    workers = [start_worker(worker_env), start_worker(worker_env)]
    try:
        granted = cli("entitlements", "grant", "42", "premium", "--days", "0.0001")  # 8.6 seconds
        assert granted.exit_code == 0, granted.output
        for chat in (CHAT_A, CHAT_B):
            telegram_api.set_member(chat, 42, "member")
        started = time.monotonic()

        wait_for(lambda: len(telegram_api.calls_to("unbanChatMember")) >= 2, timeout=60, message="removal from both chats")
        assert time.monotonic() - started < 60
        time.sleep(3)  # both workers run the expiry job several times meanwhile
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)  # (Dramatiq's main process passes it on)
        for process in workers:
            processes.end(process)
        make_runtime(load_settings(environ=worker_env, env_file="/none")).broker.flush_all()

    bans = telegram_api.calls_to("banChatMember")
    assert sorted(int(c.params["chat_id"]) for c in bans) == sorted([CHAT_A, CHAT_B])
    assert len(telegram_api.calls_to("unbanChatMember")) == 2
    ended = list(EntitlementTransition.select().where(EntitlementTransition.kind == "ended"))
    assert [(t.reason, t.entitlement) for t in ended] == [("expired", "premium")]
    assert Event.select().where(Event.type == "chat_remove").count() == 2


def test_an_expiry_pass_that_began_before_a_renewal_does_not_end_it(database):
    from datetime import timedelta

    from app import entitlements, users
    from app.access import expiry
    from app.clock import utcnow
    from app.models import EntitlementState

    user = users.ensure_user(7301)
    entitlements.grant(user, "premium", source="manual", reference="short", until=utcnow() + timedelta(seconds=0.3))
    time.sleep(0.5)
    pass_started = utcnow()  # the job read its time and the states due, then the renewal committed
    entitlements.grant(user, "premium", source="manual", reference="renewal", days=30)

    expiry.expire_due(now=pass_started)

    kinds = [t.kind for t in EntitlementTransition.select().order_by(EntitlementTransition.sequence)]
    assert kinds == ["started", "ended", "started"]
    state = EntitlementState.get((EntitlementState.user == user.id) & (EntitlementState.entitlement == "premium"))
    assert state.holding and state.ends_at is not None
