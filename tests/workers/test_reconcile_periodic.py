"""The workers reconcile with the providers' ledgers every RECONCILE_INTERVAL seconds, one at a time, once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

from app.config import load_settings
from app.models import Event, EventLog, Grant, ReconcileState
from app.plans import Catalogue
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.support.telegram import SECRET, TOKEN
from tests.conftest import ROOT, make_runtime
from tests.support import processes
from tests.support.waiting import wait_for


def start_worker(env: dict) -> subprocess.Popen:
    return processes.start(
        [sys.executable, "-m", "dramatiq", "workers.main", "--processes", "1", "--threads", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stop_signal=signal.SIGTERM,
    )


def test_two_workers_pick_up_a_missed_payment_within_the_interval_once(env, database, telegram_api):
    worker_env = {
        **os.environ, **env, "BROKER_NAMESPACE": f"entitle-reconcile-{uuid.uuid4().hex[:8]}", "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_API_URL": telegram_api.url,
        "RECONCILE_INTERVAL": "1",
    }
    settings = load_settings(environ=worker_env, env_file="/none")
    plan = Catalogue.from_file(settings.plans_file).get("premium_week")
    started = [start_worker(worker_env), start_worker(worker_env)]
    try:
        charge_id = updates.new_charge_id()
        # A payment whose webhook never came: it is only in Telegram's ledger.
        telegram_api.star_payment(55, plan.stars, payments.encode_payload(plan.key, 55), charge_id=charge_id)

        wait_for(lambda: Grant.select().where(Grant.reference == charge_id).exists(), timeout=60,
                 message="the missed payment granted by a periodic reconciliation")
        first_call = len(telegram_api.calls_to("getStarTransactions"))
        wait_for(lambda: len(telegram_api.calls_to("getStarTransactions")) >= first_call + 2, timeout=30,
                 message="later routine runs")
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            processes.end(process)
        make_runtime(settings).broker.flush_all()

    assert Event.select().where(Event.external_id == charge_id).count() == 1
    assert Grant.select().where(Grant.reference == charge_id).count() == 1
    event = Event.get(Event.external_id == charge_id)
    assert event.status == "processed"
    assert "reconciliation" in EventLog.get(EventLog.event == event.id, EventLog.action == "received").detail
    # One at a time: no second run found it missing and tried to record it again.
    assert not EventLog.select().where((EventLog.event == event.id) & (EventLog.action == "duplicate")).exists()
    state = ReconcileState.get_by_id("telegram")
    assert state.cursor_id == charge_id and state.last_summary["found"] >= 1
