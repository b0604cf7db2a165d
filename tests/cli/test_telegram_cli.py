"""`entitle refund telegram`, `entitle telegram set-webhook` and `entitle simulate telegram payment|refund`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from app.models import Grant, LedgerEntry
from app.telegram import payments
from tests.support.metrics import metric
from tests.support.telegram import PUBLIC_URL, SECRET, TOKEN_SECRET_HALF, payment_update, post_update, telegram_env, wait_until_done
from tests.conftest import ROOT
from tests.support import processes
from tests.support.waiting import wait_for


@pytest.fixture
def env(env, telegram_api):
    """The suite's environment plus the Telegram settings (tests/support/telegram.py)."""
    return telegram_env(env, telegram_api)

DAY = 24 * 3600


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def said(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def assert_no_secrets(result) -> None:
    for text in (result.stdout, result.stderr):
        assert SECRET not in text and TOKEN_SECRET_HALF not in text


def paid(client, plans, plan_key: str, charge_id: str, **extra) -> Grant:
    post_update(client, payment_update(42, plans.get(plan_key), charge_id=charge_id, **extra))
    wait_until_done(charge_id)
    return Grant.get(Grant.reference == charge_id)


# -- entitle refund telegram ---------------------------------------------------------------


def test_refund_calls_refund_star_payment_for_the_payer_and_revokes_the_grant(client, worker, cli, telegram_api, plans):
    paid(client, plans, "premium_week", "stx-refund-me")
    refunded_before = metric(client, "telegram_payments_total", result="refunded")

    result = cli("refund", "telegram", "stx-refund-me")

    assert result.exit_code == 0, result.stderr
    assert "refunded stx-refund-me to user 42" in said(result.stdout)
    (call,) = telegram_api.calls_to("refundStarPayment")
    assert call.params == {"user_id": "42", "telegram_payment_charge_id": "stx-refund-me"}
    assert telegram_api.calls_to("editUserStarSubscription") == []
    grant = Grant.get(Grant.reference == "stx-refund-me")
    assert (grant.revoked_at is not None, grant.revoke_reason) == (True, "refund")
    assert LedgerEntry.select().where((LedgerEntry.action == "refund") & (LedgerEntry.reference == "stx-refund-me")).count() == 1
    assert metric(client, "telegram_payments_total", result="refunded") == refunded_before + 1
    listed = json.loads(cli("entitlements", "list", "--user", "42", "--json").stdout)
    assert [(r["active"], r["revoked_at"] is not None) for r in listed] == [(False, True)]
    assert_no_secrets(result)


def test_refunding_a_subscription_payment_also_cancels_its_renewal(client, worker, cli, telegram_api, plans):
    paid(client, plans, "premium_month", "stx-sub", subscription_expiration_date=int(time.time()) + 30 * DAY,
         is_first_recurring=True)

    result = cli("refund", "telegram", "stx-sub", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["refunded"], data["renewal_canceled"], data["errors"]) == (True, True, [])
    assert [g["reference"] for g in data["revoked"]] == ["stx-sub"]
    (cancel,) = telegram_api.calls_to("editUserStarSubscription")
    assert (cancel.params["user_id"], cancel.params["telegram_payment_charge_id"]) == ("42", "stx-sub")
    assert cancel.flag("is_canceled") is True


def test_a_telegram_error_exits_1_shows_it_and_changes_nothing(client, worker, cli, telegram_api, plans):
    paid(client, plans, "premium_week", "stx-keep")
    telegram_api.fail("refundStarPayment", error_code=400, description="Bad Request: CHARGE_NOT_FOUND")

    result = cli("refund", "telegram", "stx-keep")

    assert result.exit_code == 1
    assert "CHARGE_NOT_FOUND (400)" in said(result.stderr)
    assert Grant.get(Grant.reference == "stx-keep").revoked_at is None
    assert LedgerEntry.select().where(LedgerEntry.action == "refund").count() == 0
    assert_no_secrets(result)


def test_an_already_refunded_charge_exits_0_saying_so_and_its_grant_is_revoked_once(client, worker, cli, telegram_api, plans):
    paid(client, plans, "premium_week", "stx-twice")
    telegram_api.fail("refundStarPayment", error_code=400, description="Bad Request: CHARGE_ALREADY_REFUNDED")

    result = cli("refund", "telegram", "stx-twice")

    assert result.exit_code == 0, result.output
    assert "already refunded: stx-twice was refunded before" in said(result.stdout)
    assert "revoked premium from user 42 (stx-twice)" in said(result.stdout)
    assert Grant.get(Grant.reference == "stx-twice").revoke_reason == "refund"

    again = cli("refund", "telegram", "stx-twice", "--json")

    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["already_refunded"] is True and json.loads(again.stdout)["revoked"] == []
    assert LedgerEntry.select().where(LedgerEntry.action == "revoke").count() == 1


def test_an_unknown_charge_exits_1_without_calling_telegram(cli, telegram_api):
    result = cli("refund", "telegram", "stx-never")

    assert result.exit_code == 1
    assert "no Telegram payment with charge id stx-never" in said(result.stderr)
    assert telegram_api.calls == []


def test_refund_without_a_bot_token_says_so(cli, client, worker, plans):
    paid(client, plans, "premium_week", "stx-no-token")

    result = cli("refund", "telegram", "stx-no-token", TELEGRAM_BOT_TOKEN="")

    assert result.exit_code == 1
    assert "TELEGRAM_BOT_TOKEN is not set" in said(result.stderr)


# -- entitle telegram set-webhook ----------------------------------------------------------


def test_set_webhook_registers_the_public_url_with_the_secret_and_update_types(cli, telegram_api):
    result = cli("telegram", "set-webhook", "--json")

    assert result.exit_code == 0, result.stderr
    (call,) = telegram_api.calls_to("setWebhook")
    assert call.params["url"] == f"{PUBLIC_URL}/webhooks/telegram"
    assert call.params["secret_token"] == SECRET
    assert call.json("allowed_updates") == ["message", "pre_checkout_query", "callback_query", "subscription"]
    shown = json.loads(result.stdout)
    assert shown["url"] == f"{PUBLIC_URL}/webhooks/telegram"
    assert shown["allowed_updates"] == ["message", "pre_checkout_query", "callback_query", "subscription"]
    assert_no_secrets(result)


def test_set_webhook_warns_about_a_plain_http_address(cli, telegram_api):
    result = cli("telegram", "set-webhook", PUBLIC_URL="http://127.0.0.1:8000")

    assert result.exit_code == 0
    assert "only to https://" in said(result.stderr)
    assert "http://127.0.0.1:8000/webhooks/telegram" in said(result.stdout)
    assert_no_secrets(result)


def test_set_webhook_needs_a_secret_and_reports_telegram_errors(cli, telegram_api):
    missing = cli("telegram", "set-webhook", TELEGRAM_WEBHOOK_SECRET="")
    assert missing.exit_code == 1 and "TELEGRAM_WEBHOOK_SECRET is not set" in said(missing.stderr)

    telegram_api.fail("setWebhook", error_code=400, description="Bad Request: bad webhook: HTTPS url must be provided")
    refused = cli("telegram", "set-webhook")
    assert refused.exit_code == 1
    assert "bad webhook: HTTPS url must be provided (400)" in said(refused.stderr)
    assert_no_secrets(refused)


# -- entitle simulate telegram -------------------------------------------------------------


def test_simulated_payment_and_refund_go_through_a_running_service(cli, live_server, worker, telegram_api):
    result = cli("simulate", "telegram", "payment", "--user-id", "42", "--plan", "premium_month", "--url", live_server, "--json")

    assert result.exit_code == 0, result.stderr
    sent = json.loads(result.stdout)
    assert (sent["pre_checkout"], sent["status"], sent["stars"]) == ("approved", "recorded", 250)
    wait_until_done(sent["charge_id"])
    grant = Grant.get(Grant.reference == sent["charge_id"])
    assert (grant.plan, grant.subscription_id is not None, grant.revoked_at) == ("premium_month", True, None)
    # The confirmation goes out just after the grant commits.
    wait_for(lambda: telegram_api.calls_to("sendMessage"), message="the confirmation")
    assert len(telegram_api.calls_to("sendMessage")) == 1

    refund = cli("simulate", "telegram", "refund", "--charge-id", sent["charge_id"], "--url", live_server)

    assert refund.exit_code == 0, refund.stderr
    wait_until_done(f"refund:{sent['charge_id']}")
    assert Grant.get(Grant.reference == sent["charge_id"]).revoke_reason == "refund"
    assert_no_secrets(result)
    assert_no_secrets(refund)


def test_simulating_with_the_wrong_secret_shows_the_services_401(cli, live_server):
    result = cli("simulate", "telegram", "payment", "--user-id", "42", "--plan", "premium_week", "--url", live_server,
                 TELEGRAM_WEBHOOK_SECRET="not-the-services-secret")

    assert result.exit_code == 1
    assert "answered 401" in said(result.stderr)
    assert "not-the-services-secret" not in said(result.stderr)


def test_simulating_an_unknown_plan_or_an_unreachable_service_exits_1(cli, live_server):
    unknown = cli("simulate", "telegram", "payment", "--user-id", "42", "--plan", "gold", "--url", live_server)
    assert unknown.exit_code == 1 and "no plan 'gold'" in said(unknown.stderr)

    down = cli("simulate", "telegram", "payment", "--user-id", "42", "--plan", "premium_week", "--url", "http://127.0.0.1:9")
    assert down.exit_code == 1 and "cannot reach" in said(down.stderr)


def test_simulating_a_refund_of_an_unknown_charge_needs_the_user(cli, live_server):
    result = cli("simulate", "telegram", "refund", "--charge-id", "stx-unknown", "--url", live_server)

    assert result.exit_code == 1
    assert "pass --user-id" in said(result.stderr)


def test_the_payload_of_a_simulated_payment_is_one_of_ours(cli, live_server, worker):
    result = cli("simulate", "telegram", "payment", "--user-id", "7", "--plan", "premium_week", "--url", live_server, "--json")

    charge_id = json.loads(result.stdout)["charge_id"]
    event = wait_until_done(charge_id)
    payload = payments.decode_payload(event.payload["message"]["successful_payment"]["invoice_payload"])
    assert (payload.plan, payload.user_id) == ("premium_week", 7)


def test_a_simulated_payment_that_is_not_granted_exits_1_with_the_reason(cli, env, live_server, tmp_path):
    # Given web pricing premium_week as the CLI does, and a worker still on a catalogue where it costs more
    # (a deploy half done): the pre-checkout is approved, the payment is not what the worker's plan costs.
    worker_plans = tmp_path / "worker-plans.toml"
    worker_plans.write_text((ROOT / "plans.toml").read_text().replace("stars = 75\n", "stars = 80\n", 1))
    worker_env = {**os.environ, **env, "PLANS_FILE": str(worker_plans), "PYTHONPATH": str(ROOT)}
    processes.start([sys.executable, "-m", "dramatiq", "workers.main", "--processes", "1", "--threads", "1"], cwd=ROOT,
                    env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stop_signal=signal.SIGTERM)

    # When the payment is simulated
    result = cli("simulate", "telegram", "payment", "--user-id", "42", "--plan", "premium_week", "--url", live_server, "--json")

    # Then it exits 1 saying why, and nothing is granted
    assert result.exit_code == 1, result.output
    sent = json.loads(result.stdout)
    assert sent["outcome"].startswith("failed") and "75 Stars were paid" in sent["outcome"]
    assert "was not granted" in said(result.stderr) and f"entitle refund telegram {sent['charge_id']}" in said(result.stderr)
    assert not Grant.select().where(Grant.reference == sent["charge_id"]).exists()
