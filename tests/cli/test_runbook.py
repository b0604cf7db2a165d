"""The operator's runbook end to end, through the CLI only, against `entitle run`, `entitle worker` and `entitle sandbox`.

A payer says they paid → `customer show` → refund → `customer show` again → `events list --user`
→ `status` sees the worker, and says so within a minute when it stops.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid

import requests

from simulate.redis_server import free_port
from tests.cli.test_sandbox_cli import run
from tests.cli.test_service import clean_env, entitle
from tests.conftest import REDIS_URL
from tests.support import processes
from tests.support.waiting import wait_for


def _timeline(env, tmp_path, user: int) -> list[dict]:
    shown = run(env, tmp_path, "customer", "show", str(user), "--json")
    return json.loads(shown.stdout)["timeline"] if shown.returncode == 0 else []


def test_the_runbook_from_payment_to_refund_and_a_stopped_worker(sandbox, tmp_path):
    port = free_port()
    env = clean_env(tmp_path, **sandbox, PUBLIC_URL=f"http://127.0.0.1:{port}", BROKER_URL=REDIS_URL,
                    BROKER_NAMESPACE=f"entitle-runbook-{uuid.uuid4().hex[:8]}")
    assert run(env, tmp_path, "db", "migrate").returncode == 0
    web = processes.start(entitle("run", "--port", str(port)), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    worker = processes.start(entitle("worker", "--processes", "1", "--threads", "2"), cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stop_signal=signal.SIGTERM)
    try:
        def up():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                assert web.poll() is None, web.stdout.read()
                return False

        wait_for(up, timeout=40, message="web and worker to be up")

        # A Stars payment and a card payment, as the providers would send them.
        stars = run(env, tmp_path, "simulate", "telegram", "payment", "--user-id", "501", "--plan", "premium_week", "--json")
        card = run(env, tmp_path, "simulate", "stripe", "checkout", "--user-id", "501", "--plan", "premium_week", "--json")
        assert stars.returncode == 0 and card.returncode == 0, stars.stderr + card.stderr
        charge, intent = json.loads(stars.stdout)["charge_id"], json.loads(card.stdout)["payment_intent"]

        def paid_twice():
            return {line["reference"] for line in _timeline(env, tmp_path, 501) if line["kind"] == "payment"} == {charge, intent}

        wait_for(paid_twice, timeout=30, message="customer show to list both payments")

        assert run(env, tmp_path, "refund", "telegram", charge).returncode == 0
        assert run(env, tmp_path, "refund", "stripe", intent).returncode == 0
        timeline = _timeline(env, tmp_path, 501)
        refunds = {line["reference"] for line in timeline if line["kind"] == "refund"}
        revoked = {line["reference"] for line in timeline if line["kind"] == "revocation"}
        assert refunds == revoked == {charge, intent}

        found = json.loads(run(env, tmp_path, "events", "list", "--user", "501", "--json").stdout)
        assert charge in {row["external_id"] for row in found if row["provider"] == "telegram"}
        stripe_events = {row["external_id"] for row in found if row["provider"] == "stripe"}
        assert stripe_events, "the card payment's events are found by the payer too"
        by_intent = json.loads(run(env, tmp_path, "events", "list", "--search", intent, "--json").stdout)
        assert {row["external_id"] for row in by_intent} <= stripe_events

        status = run(env, tmp_path, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        assert json.loads(status.stdout)["workers"]["alive"] == 1
    finally:
        # As `kill PID` stops it: Dramatiq's main process passes the signal on and its workers stop cleanly.
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)  # (its group is SIGKILLed after the test should anything outlive it)
        stopped_at = time.monotonic()
        try:
            wait_for(lambda: run(env, tmp_path, "status").returncode == 1, timeout=60, interval=1,
                     message="status to exit 1 once no worker is alive")
            assert time.monotonic() - stopped_at < 60
            assert "0 alive" in " ".join(run(env, tmp_path, "status").stdout.split())
        finally:
            processes.end(web)
