"""`entitle sandbox` as an operator uses it: real processes for the sandbox, the service and every CLI command."""
from __future__ import annotations

import json
import subprocess

import pytest
import requests

from simulate.redis_server import free_port
from tests.cli.test_service import clean_env, entitle
from tests.support import processes
from tests.support.waiting import wait_for

NAMES = ("TELEGRAM_API_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "STRIPE_API_BASE", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")


@pytest.fixture
def service(tmp_path, sandbox):
    """`entitle run` pointed at the sandbox; yields the environment every CLI command runs with."""
    port = free_port()
    env = clean_env(tmp_path, **sandbox, PUBLIC_URL=f"http://127.0.0.1:{port}")
    env.pop("JWT_SECRET_KEY", None)
    subprocess.run(entitle("db", "migrate"), cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)
    proc = processes.start(entitle("run", "--port", str(port)), cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def healthy():
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            assert proc.poll() is None, proc.stdout.read()
            return False

    try:
        wait_for(healthy, timeout=30, message="entitle run to answer")
        yield env
    finally:
        processes.end(proc)


def run(env, tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(entitle(*args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def grants(env, tmp_path, user: int) -> list[dict]:
    listed = run(env, tmp_path, "entitlements", "list", "--user", str(user), "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def test_the_sandbox_prints_the_variables_that_point_the_service_at_it(sandbox):
    assert set(sandbox) == set(NAMES)
    assert sandbox["TELEGRAM_API_URL"] == sandbox["STRIPE_API_BASE"]
    assert sandbox["STRIPE_SECRET_KEY"].startswith("sk_test_")
    assert len(sandbox["TELEGRAM_WEBHOOK_SECRET"]) >= 16 and len(sandbox["STRIPE_WEBHOOK_SECRET"]) >= 16
    token = sandbox["TELEGRAM_BOT_TOKEN"]
    me = requests.get(f"{sandbox['TELEGRAM_API_URL']}/bot{token}/getMe", timeout=5).json()
    assert me["ok"] is True and me["result"]["is_bot"] is True
    wrong = requests.get(f"{sandbox['TELEGRAM_API_URL']}/bot1:wrong/getMe", timeout=5)
    assert wrong.status_code == 401
    headers = {"Authorization": f"Bearer {sandbox['STRIPE_SECRET_KEY']}"}
    assert requests.get(f"{sandbox['STRIPE_API_BASE']}/v1/refunds", headers=headers, timeout=5).status_code == 200
    refused = requests.get(f"{sandbox['STRIPE_API_BASE']}/v1/refunds", headers={"Authorization": "Bearer sk_test_other"}, timeout=5)
    assert refused.status_code == 401


def test_a_simulated_stars_payment_is_granted_and_refunded_through_the_sandbox(service, tmp_path):
    paid = run(service, tmp_path, "simulate", "telegram", "payment", "--user-id", "41", "--plan", "premium_week", "--json")
    assert paid.returncode == 0, paid.stderr
    sent = json.loads(paid.stdout)
    assert sent["sandbox"] is True
    charge = sent["charge_id"]
    wait_for(lambda: [g["active"] for g in grants(service, tmp_path, 41)] == [True], message="the Stars grant")

    refunded = run(service, tmp_path, "refund", "telegram", charge)
    assert refunded.returncode == 0, refunded.stderr
    assert f"refunded {charge}" in " ".join(refunded.stdout.split())
    [grant] = grants(service, tmp_path, 41)
    assert grant["active"] is False and grant["revoked_at"] is not None

    again = run(service, tmp_path, "refund", "telegram", charge)
    assert again.returncode == 0, again.stderr
    assert f"already refunded: {charge} was refunded before" in " ".join(again.stdout.split()), "the sandbox remembers the refund"
    assert "nothing revoked twice" in again.stdout


def test_a_simulated_card_payment_is_granted_and_refunded_through_the_sandbox(service, tmp_path):
    paid = run(service, tmp_path, "simulate", "stripe", "checkout", "--user-id", "42", "--plan", "premium_week", "--json")
    assert paid.returncode == 0, paid.stderr
    sent = json.loads(paid.stdout)
    intent = sent["payment_intent"]
    assert intent.startswith("pi_") and sent["sandbox"] is True
    assert [e["answer"]["result"] for e in sent["events"]] == ["accepted"] * 3, "answers are JSON, not escaped strings"
    wait_for(lambda: [(g["active"], g["reference"]) for g in grants(service, tmp_path, 42)] == [(True, intent)], message="the card grant")

    refunded = run(service, tmp_path, "refund", "stripe", intent)
    assert refunded.returncode == 0, refunded.stderr
    assert f"refunded {intent}" in refunded.stdout
    [grant] = grants(service, tmp_path, 42)
    assert grant["active"] is False and grant["revoked_at"] is not None

    # Refunding twice reads as it does for Stars: exit 0, already refunded, nothing revoked twice.
    again = run(service, tmp_path, "refund", "stripe", intent)
    assert again.returncode == 0, again.stderr
    assert f"already refunded: {intent} was refunded before" in " ".join(again.stdout.split())
    assert "nothing revoked twice" in again.stdout


def test_the_mini_app_shows_card_prices_read_from_the_sandbox(service):
    plans = requests.get(f"{service['PUBLIC_URL']}/api/plans?lang=en", timeout=5).json()["plans"]
    prices = {plan["key"]: plan["card_price"] for plan in plans}

    # What a simulated checkout charges, as the sandbox's Stripe stand-in answers each plan's price.
    assert prices["premium_week"] == {"amount": 500, "currency": "usd", "formatted": "$5.00", "interval": None, "interval_count": 1}
    assert prices["premium_month"]["formatted"] == "$5.00" and prices["premium_month"]["interval"] == "month"
    assert prices["supporter_lifetime"] is None


def test_simulate_stripe_checkout_prints_the_payment_intent_to_refund(service, tmp_path):
    paid = run(service, tmp_path, "simulate", "stripe", "checkout", "--user-id", "43", "--plan", "premium_week")
    assert paid.returncode == 0, paid.stderr
    said = " ".join(paid.stdout.split())
    assert "payment intent: pi_" in said and "entitle refund stripe pi_" in said


def test_a_second_sandbox_on_a_taken_port_says_so(sandbox, tmp_path):
    port = sandbox["STRIPE_API_BASE"].rsplit(":", 1)[1]
    taken = subprocess.run(entitle("sandbox", "--port", port), cwd=tmp_path, env=clean_env(tmp_path),
                           capture_output=True, text=True, timeout=30)
    assert taken.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr


def test_a_star_subscription_is_canceled_and_resumed_through_the_sandbox(service, tmp_path, sandbox):
    paid = run(service, tmp_path, "simulate", "telegram", "payment", "--user-id", "44", "--plan", "premium_month", "--json")
    assert paid.returncode == 0, paid.stderr
    charge = json.loads(paid.stdout)["charge_id"]
    wait_for(lambda: run(service, tmp_path, "subscriptions", "list", "--user", "44", "--json").stdout.startswith("[\n"),
             message="the subscription's record")
    [subscription] = json.loads(run(service, tmp_path, "subscriptions", "list", "--user", "44", "--json").stdout)

    canceled = run(service, tmp_path, "subscriptions", "cancel", str(subscription["id"]))
    resumed = run(service, tmp_path, "subscriptions", "resume", str(subscription["id"]))
    in_telegram = run(service, tmp_path, "simulate", "telegram", "subscription", "--user-id", "44", "--state", "canceled", "--json")

    assert canceled.returncode == 0 and "will not renew" in canceled.stdout, canceled.stderr
    assert resumed.returncode == 0 and "resumed" in resumed.stdout, resumed.stderr
    assert in_telegram.returncode == 0 and json.loads(in_telegram.stdout)["outcome"] == "processed", in_telegram.stdout
    held = requests.get(f"{sandbox['TELEGRAM_API_URL']}/_sandbox", timeout=5).json()
    assert held["telegram"]["subscription_edits"] == [
        {"user_id": 44, "telegram_payment_charge_id": charge, "is_canceled": True},
        {"user_id": 44, "telegram_payment_charge_id": charge, "is_canceled": False},
    ]
    [now] = json.loads(run(service, tmp_path, "subscriptions", "list", "--user", "44", "--json").stdout)
    assert (now["state"], now["canceled_by"]) == ("canceled", "payer")


def test_payments_whose_webhooks_were_never_sent_are_found_by_reconcile_and_granted_once(service, tmp_path, sandbox):
    stars = run(service, tmp_path, "simulate", "telegram", "payment", "--user-id", "45", "--plan", "premium_week", "--no-deliver", "--quiet")
    card = run(service, tmp_path, "simulate", "stripe", "checkout", "--user-id", "46", "--plan", "premium_week", "--no-deliver", "--quiet")
    assert stars.returncode == 0 and card.returncode == 0, stars.stderr + card.stderr
    charge, intent = stars.stdout.strip(), card.stdout.strip()
    held = requests.get(f"{sandbox['TELEGRAM_API_URL']}/_sandbox", timeout=5).json()
    assert held["telegram"]["star_transactions"] == 1 and held["stripe"]["events"] == 3 and held["stripe"]["checkout_sessions"] == 1
    inbox = run(service, tmp_path, "events", "list", "--json")
    assert inbox.returncode == 0 and json.loads(inbox.stdout) == [], "the service was sent nothing"
    assert grants(service, tmp_path, 45) == [] and grants(service, tmp_path, 46) == []

    for provider, user, reference in (("telegram", 45, charge), ("stripe", 46, intent)):
        found = run(service, tmp_path, "reconcile", provider)
        assert found.returncode == 0, found.stdout + found.stderr
        said = " ".join(found.stdout.split())
        assert "1 recorded," in said and f"user {user}): processed — granted premium to user {user} until" in said, said
        [grant] = grants(service, tmp_path, user)
        assert (grant["active"], grant["source"], grant["reference"]) == (True, provider, reference)

        again = run(service, tmp_path, "reconcile", provider)
        assert again.returncode == 0 and "0 recorded," in " ".join(again.stdout.split()), again.stdout + again.stderr
        assert len(grants(service, tmp_path, user)) == 1
