"""`entitle worker`: queues chosen by `--queues` or `WORKER_QUEUES`, and supervised processes whose deaths are logged with their cause."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from app.models import Event, Grant
from app.plans import Catalogue
from simulate import telegram_updates as updates
from tests.conftest import ROOT
from tests.support import processes
from tests.support.telegram import payment_update, post_update, telegram_env
from tests.support.waiting import wait_for

ENTITLE = str(Path(sys.executable).with_name("entitle"))


@pytest.fixture
def worker_env(env, telegram_api, tmp_path):
    values = {**os.environ, **telegram_env(env, telegram_api), "BROKER_NAMESPACE": f"entitle-worker-{uuid.uuid4().hex[:8]}"}
    values.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return values


class Running:
    """An `entitle worker` started in its own session (tests.support.processes), its log in a file."""

    def __init__(self, env: dict, log: Path, *args: str):
        self.log_path = log
        self._log = open(log, "w")
        self.proc = processes.start([ENTITLE, "worker", *args], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                    stop_signal=signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        """SIGTERM to the supervisor alone, as a platform stops it; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        processes.end(self.proc)
        self._log.close()
        return self.proc.returncode


def started(env: dict, log: Path, *args: str) -> Running:
    return Running(env, log, *args)


def test_a_worker_consumes_only_the_queues_it_is_given(worker_env, database, telegram_api, tmp_path):
    from webapp import create_app
    from app.config import load_settings

    client = create_app(load_settings(environ=worker_env, env_file="/none")).test_client()
    plan = Catalogue.from_file(worker_env["PLANS_FILE"]).get("premium_week")
    replies = started(worker_env, tmp_path / "sessions.log", "--processes", "1", "--threads", "1", "--queues", "sessions")

    # Given a worker for bot replies only, a payment and a /start
    payment = payment_update(6100, plan)
    assert post_update(client, payment).status_code == 200
    assert post_update(client, updates.command_update(6101, "/start")).status_code == 200

    # Then the reply is sent and the payment waits for a worker of its own queue
    wait_for(lambda: [c for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == "6101"], timeout=60, message="the reply")
    charge = payment["message"]["successful_payment"]["telegram_payment_charge_id"]
    assert Event.get(Event.external_id == charge).status == "pending"
    assert not Grant.select().where(Grant.reference == charge).exists()

    # When a worker of the payments queue starts (chosen by WORKER_QUEUES this time)
    payments = started({**worker_env, "WORKER_QUEUES": "payments"}, tmp_path / "payments.log", "-p", "1", "-t", "1")

    # Then the payment is granted, once
    wait_for(lambda: Grant.select().where(Grant.reference == charge).count() == 1, timeout=60, message="the grant")
    assert "consuming sessions." in replies.log() and "consuming payments." in payments.log()
    assert replies.stop() == 0 and payments.stop() == 0


def test_an_unknown_queue_is_refused_naming_the_queues(worker_env, database):
    flag = subprocess.run([ENTITLE, "worker", "--queues", "payments,urgent"], cwd=ROOT, env=worker_env, capture_output=True, text=True, timeout=60)
    assert flag.returncode == 2
    said = " ".join(re.sub(r"[│╭╮╰╯─]", " ", flag.stderr).split())  # rich draws usage errors in a box
    assert "unknown queue urgent; the queues are payments, access, sessions" in said
    setting = subprocess.run([ENTITLE, "worker"], cwd=ROOT, env={**worker_env, "WORKER_QUEUES": "slow"}, capture_output=True, text=True, timeout=60)
    assert setting.returncode == 1 and "WORKER_QUEUES names unknown queue slow" in setting.stderr


def _started_pids(text: str) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for index, pid in re.findall(r"worker process (\d+) started \(pid (\d+)\)", text):
        found.setdefault(int(index), []).append(int(pid))
    return found


def test_a_killed_worker_process_is_logged_with_its_cause_and_restarted(worker_env, database, telegram_api, tmp_path):
    from webapp import create_app
    from app.config import load_settings

    worker = started(worker_env, tmp_path / "worker.log", "--processes", "2", "--threads", "1")
    wait_for(lambda: worker.log().count("worker process ready") == 2, timeout=60, message="two worker processes")
    assert "This process supervises them" in worker.log()
    victim = _started_pids(worker.log())[1][0]

    # When one worker process is killed as the out-of-memory killer would
    os.kill(victim, signal.SIGKILL)

    # Then its death is logged with the cause, it is started again, and the worker keeps working
    wait_for(lambda: len(_started_pids(worker.log()).get(1, [])) == 2, timeout=30, message="the restart")
    assert f"worker process 1 (pid {victim}) was killed by SIGKILL" in worker.log()
    assert worker.proc.poll() is None
    client = create_app(load_settings(environ=worker_env, env_file="/none")).test_client()
    payment = payment_update(6200, Catalogue.from_file(worker_env["PLANS_FILE"]).get("premium_week"))
    assert post_update(client, payment).status_code == 200
    charge = payment["message"]["successful_payment"]["telegram_payment_charge_id"]
    wait_for(lambda: Grant.select().where(Grant.reference == charge).count() == 1, timeout=60, message="the grant")

    # And SIGTERM stops it cleanly
    assert worker.stop() == 0
    assert "worker stopped" in worker.log()


def test_a_worker_that_cannot_start_stops_the_whole_worker_with_exit_1(worker_env, database, tmp_path):
    broken = tmp_path / "plans.toml"
    broken.write_text("[plans.x]\ntitle = 'X'\nentitlement = 'x'\ndays = 'many'\n")
    worker = started({**worker_env, "PLANS_FILE": str(broken)}, tmp_path / "worker.log", "-p", "1", "-t", "1")
    assert worker.proc.wait(60) == 1
    text = worker.log()
    assert "worker process 1" in text and "could not start" in text
    assert "not restarting worker process 1: starting it again cannot help" in text
