"""Redis frozen (SIGSTOP) while payments and pre-checkout queries arrive at the Procfile's web process: every answer comes in Telegram's 10 s."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import requests

from app.models import Event
from app.plans import Catalogue
from app.telegram import payments as stars
from simulate import telegram_updates as updates
from simulate.redis_server import RedisServer, free_port
from tests.conftest import ROOT
from tests.support import processes
from tests.support.telegram import HEADERS, payment_update, telegram_env
from tests.support.waiting import wait_for

TELEGRAM_DEADLINE = 10  # seconds Telegram waits for the answer to a pre-checkout query


def _web_line() -> str:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())["web"]


def test_pre_checkout_answers_never_wait_on_a_frozen_redis(env, database, telegram_api, tmp_path):
    redis = RedisServer().start()
    port = free_port()
    run_env = {
        **os.environ, **telegram_env(env, telegram_api), "BROKER_URL": redis.url, "PORT": str(port),
        "WEB_CONCURRENCY": "1",  # one sync worker: requests take turns, as on a small dyno
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    run_env["PATH"] = f"{os.path.dirname(sys.executable)}:{run_env['PATH']}"
    web = processes.start(["bash", "-c", _web_line()], cwd=ROOT, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          stop_signal=signal.SIGTERM)
    url = f"http://127.0.0.1:{port}/webhooks/telegram"
    plan = Catalogue.from_file(env["PLANS_FILE"]).get("premium_week")
    try:
        def up():
            try:
                return [requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)]
            except requests.RequestException:
                assert web.poll() is None, "gunicorn exited"
                return None

        wait_for(up, timeout=30, message="gunicorn to answer")
        # Given Redis frozen: connections open, nothing ever answered
        os.kill(redis.process.pid, signal.SIGSTOP)

        # When payments arrive, and pre-checkout queries right behind them
        def post(update: dict) -> requests.Response:
            return requests.post(url, json=update, headers=HEADERS, timeout=TELEGRAM_DEADLINE)

        with ThreadPoolExecutor(8) as pool:
            paid = [pool.submit(post, payment_update(8000 + i, plan, charge_id=f"frozen-{i}")) for i in range(4)]
            queries = [
                pool.submit(post, updates.pre_checkout_query_update(8100 + i, stars.encode_payload(plan.key, 8100 + i), plan.stars))
                for i in range(3)
            ]
            # Then every answer arrives within Telegram's deadline (a late one raises a timeout here)
            answers = [q.result() for q in queries]
            payment_statuses = [p.result().status_code for p in paid]
        assert [a.status_code for a in answers] == [200] * 3
        assert all(a.json()["method"] == "answerPreCheckoutQuery" and a.json()["ok"] is True for a in answers)
        assert payment_statuses == [200] * 4
        # And the payments wait in the inbox for the sweeper, none lost
        rows = list(Event.select().where(Event.external_id.startswith("frozen-")))
        assert len(rows) == 4 and all(row.status == "pending" for row in rows)
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)
        processes.end(web)
        redis.stop()
