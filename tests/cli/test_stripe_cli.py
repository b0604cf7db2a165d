"""`entitle refund stripe` and `entitle simulate stripe checkout`, against the fake Stripe API and a served app."""
from __future__ import annotations

import json

import pytest

from app import users
from app.models import Event, Grant, LedgerEntry
from tests.support.metrics import sample
from tests.support.stripe import PRICES, SECRET_KEY, WEBHOOK_SECRET, buy, stripe_env, token_for
from tests.support.waiting import wait_for

USER = 42


@pytest.fixture
def env(env, stripe_api):
    return {**env, **stripe_env(stripe_api)}


@pytest.fixture
def paid(client, app, stripe_api):
    """A one-off card purchase of USER, fulfilled through the success page."""
    users.ensure_user(USER)
    return buy(client, app, stripe_api, USER)


def no_secrets(result) -> None:
    for text in (result.stdout, result.stderr):
        assert SECRET_KEY not in text and WEBHOOK_SECRET not in text
        assert "sk_test_" not in text and "whsec_" not in text


def test_refund_creates_the_refund_and_revokes_the_grant(cli, paid, stripe_api):
    payment = paid["payment_intent"]
    revoked_before = sample("entitlements_revoked_total", source="stripe", reason="refund")

    result = cli("refund", "stripe", payment)

    assert result.exit_code == 0, result.output
    assert f"refunded {payment}" in result.stdout and "revoked premium from user 42" in result.stdout
    [refund] = stripe_api.refunds.values()
    assert refund["payment_intent"] == payment and refund["amount"] == paid["amount_total"]
    [call] = stripe_api.calls_to("POST", "/v1/refunds")
    assert call.headers["Idempotency-Key"].startswith(f"refund-{payment}-")
    grant = Grant.get(Grant.reference == payment)
    assert grant.revoke_reason == "refund"
    assert LedgerEntry.get(LedgerEntry.action == "refund").detail["refund"] == refund["id"]
    assert sample("entitlements_revoked_total", source="stripe", reason="refund") == revoked_before + 1
    no_secrets(result)

    [row] = json.loads(cli("entitlements", "list", "--user", str(USER), "--json").stdout)
    assert not row["active"] and row["revoked_at"]


@pytest.mark.parametrize(
    "amount, currency, shown",
    [(499, "eur", "4.99 EUR"), (500, "jpy", "500 JPY"), (1250, "kwd", "1.250 KWD")],  # two decimals, zero-decimal, three
)
def test_customer_show_says_what_a_checkout_charged_in_the_currencys_unit_and_refund_says_it_too(
    cli, client, app, stripe_api, amount, currency, shown
):
    stripe_api.put_price(price_id=PRICES["premium_week"], unit_amount=amount, currency=currency, interval=None)
    users.ensure_user(USER)
    session = buy(client, app, stripe_api, USER)
    assert (session["amount_total"], session["currency"]) == (amount, currency)

    timeline = json.loads(cli("customer", "show", str(USER), "--json").stdout)["timeline"]
    [payment] = [line for line in timeline if line["kind"] == "payment"]
    assert payment["summary"].startswith(f"paid {shown} via stripe → premium ")
    assert (payment["detail"]["amount"], payment["detail"]["currency"]) == (amount, currency)

    refunded = cli("refund", "stripe", session["payment_intent"])
    assert refunded.exit_code == 0, refunded.output
    assert shown in " ".join(refunded.stdout.split())
    timeline = json.loads(cli("customer", "show", str(USER), "--json").stdout)["timeline"]
    [refund] = [line for line in timeline if line["kind"] == "refund"]
    assert refund["summary"].startswith(f"refund of {shown} via stripe")


def test_customer_show_says_what_a_subscriptions_first_invoice_charged(cli, client, app, stripe_api):
    stripe_api.put_price(price_id=PRICES["premium_month"], unit_amount=499, currency="eur", interval="month")
    users.ensure_user(USER)
    session = buy(client, app, stripe_api, USER, plan="premium_month")

    timeline = json.loads(cli("customer", "show", str(USER), "--json").stdout)["timeline"]
    [payment] = [line for line in timeline if line["kind"] == "payment"]
    assert payment["summary"].startswith("paid 4.99 EUR via stripe → premium ")
    assert payment["detail"]["invoice"] == session["invoice"]


def test_stripe_customer_means_the_same_in_customer_show_as_in_the_mini_app(cli, paid, client, app):
    me = client.get("/api/me", headers=token_for(app, USER)).get_json()["user"]

    shown = json.loads(cli("customer", "show", str(USER), "--json").stdout)["user"]

    assert me["stripe_customer"] is True and shown["stripe_customer"] is True
    assert shown["stripe_customer_id"] == paid["customer"] and paid["customer"].startswith("cus_")


def test_refund_json_names_the_refund_and_what_was_revoked(cli, paid, stripe_api):
    result = cli("refund", "stripe", paid["payment_intent"], "--json")
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert body["refund"] in stripe_api.refunds and body["user"] == USER
    assert body["revoked"] == [{"entitlement": "premium", "reference": paid["payment_intent"]}]


def test_a_stripe_error_is_shown_plainly_and_nothing_is_revoked(cli, paid, stripe_api):
    stripe_api.fail_refunds(code="charge_disputed", message="This charge has been disputed and cannot be refunded.")

    result = cli("refund", "stripe", paid["payment_intent"])

    assert result.exit_code == 1
    assert "Stripe error (HTTP 400, invalid_request_error, code charge_disputed" in result.stderr
    assert "cannot be refunded" in result.stderr and "nothing was revoked" in result.stderr
    assert "Traceback" not in result.output
    assert Grant.get(Grant.reference == paid["payment_intent"]).revoked_at is None
    assert stripe_api.refunds == {}
    no_secrets(result)


def test_a_refund_that_failed_can_be_run_again_once_its_cause_is_fixed(cli, paid, stripe_api):
    payment = paid["payment_intent"]
    stripe_api.fail_refunds(code="balance_insufficient", message="Insufficient funds in Stripe account.", times=1)
    first = cli("refund", "stripe", payment)
    assert first.exit_code == 1 and "balance_insufficient" in first.stderr

    again = cli("refund", "stripe", payment)

    assert again.exit_code == 0, again.output
    [refund] = stripe_api.refunds.values()
    assert refund["payment_intent"] == payment
    assert Grant.get(Grant.reference == payment).revoke_reason == "refund"
    keys = [call.headers["Idempotency-Key"] for call in stripe_api.calls_to("POST", "/v1/refunds")]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_a_payment_refunded_at_stripe_already_still_loses_its_grant(cli, paid, stripe_api):
    payment = paid["payment_intent"]
    stripe_api.fail_refunds()

    result = cli("refund", "stripe", payment, "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["already_refunded"] is True and body["refund"] is None and body["errors"] == []
    assert body["revoked"] == [{"entitlement": "premium", "reference": payment}]
    shown = cli("refund", "stripe", payment)
    assert shown.exit_code == 0, shown.output
    assert f"already refunded: {payment} was refunded before" in " ".join(shown.stdout.split())
    assert "its grant was already revoked; nothing revoked twice" in " ".join(shown.stdout.split())
    assert Grant.get(Grant.reference == payment).revoke_reason == "refund"
    assert LedgerEntry.get(LedgerEntry.action == "refund").detail["already_refunded"] is True


def test_refunding_a_subscription_payment_stops_its_renewals(cli, client, app, stripe_api):
    users.ensure_user(USER)
    session = buy(client, app, stripe_api, USER, plan="premium_month")
    payment = stripe_api.invoice_payments[session["invoice"]][0]["payment"]["payment_intent"]

    result = cli("refund", "stripe", payment)

    assert result.exit_code == 0, result.output
    assert f"stopped the renewals of subscription {session['subscription']}" in result.stdout
    subscription = stripe_api.subscriptions[session["subscription"]]
    assert subscription["cancel_at_period_end"] is True and subscription["status"] == "active"
    [update] = stripe_api.calls_to("POST", f"/v1/subscriptions/{session['subscription']}")
    assert update.params == {"cancel_at_period_end": "true"}
    assert Grant.get(Grant.reference == payment).revoke_reason == "refund"


def test_when_stopping_renewals_fails_the_refund_stands_and_the_command_says_run_again(cli, client, app, stripe_api):
    users.ensure_user(USER)
    session = buy(client, app, stripe_api, USER, plan="premium_month")
    payment = stripe_api.invoice_payments[session["invoice"]][0]["payment"]["payment_intent"]
    stripe_api.fail("POST", "/v1/subscriptions", status=500, message="Stripe is having a moment")

    failed = cli("refund", "stripe", payment)

    assert failed.exit_code == 1
    assert "stopping the renewals" in failed.stderr and "run the command again" in failed.stderr
    assert Grant.get(Grant.reference == payment).revoked_at is not None and len(stripe_api.refunds) == 1

    stripe_api.clear_failures()
    again = cli("refund", "stripe", payment)
    assert again.exit_code == 0, again.output
    assert stripe_api.subscriptions[session["subscription"]]["cancel_at_period_end"] is True
    assert len(stripe_api.refunds) == 1


def test_a_payment_that_granted_nothing_here_is_not_refunded(cli, stripe_api):
    result = cli("refund", "stripe", "pi_3NotOurs0000000000000000")
    assert result.exit_code == 1 and "no grant here" in result.stderr
    assert stripe_api.calls == []


def test_a_refund_id_that_is_not_a_payment_intent_is_a_usage_error(cli):
    assert cli("refund", "stripe", "ch_123").exit_code == 2


def test_simulate_checkout_posts_signed_events_that_grant_nothing_stripe_does_not_know(cli, live_server, worker):
    accepted_before = sample("stripe_webhooks_total", type="checkout.session.completed", result="accepted")
    result = cli("simulate", "stripe", "checkout", "--user-id", "777", "--plan", "premium_week", "--url", live_server, "--json")

    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    assert "was not granted: failed" in said and "Stripe knows no checkout session" in said
    sent = json.loads(result.stdout)["events"]
    assert [e["type"] for e in sent] == ["charge.succeeded", "payment_intent.succeeded", "checkout.session.completed"]
    assert {e["status"] for e in sent} == {200}
    wait_for(lambda: Event.select().where(Event.status.in_(["processed", "ignored", "failed"])).count() == 3, message="events handled")

    statuses = {e.type: e.status for e in Event.select()}
    assert statuses == {"charge.succeeded": "ignored", "payment_intent.succeeded": "ignored", "checkout.session.completed": "failed"}
    checkout = Event.get(Event.type == "checkout.session.completed")
    assert "Stripe knows no checkout session" in checkout.error
    assert json.loads(cli("entitlements", "list", "--user", "777", "--json").stdout) == []
    assert sample("stripe_webhooks_total", type="checkout.session.completed", result="accepted") == accepted_before + 1
    no_secrets(result)


def test_simulate_says_plainly_what_it_cannot_do(cli):
    subscription = cli("simulate", "stripe", "checkout", "--user-id", "1", "--plan", "premium_month")
    assert subscription.exit_code == 1 and "is a subscription" in subscription.stderr
    unknown = cli("simulate", "stripe", "checkout", "--user-id", "1", "--plan", "nope")
    assert unknown.exit_code == 1 and "unknown plan 'nope'" in unknown.stderr
    stars_only = cli("simulate", "stripe", "checkout", "--user-id", "1", "--plan", "supporter_lifetime")
    assert stars_only.exit_code == 1 and "not sold by card" in stars_only.stderr
    unsigned = cli("simulate", "stripe", "checkout", "--user-id", "1", "--plan", "premium_week", STRIPE_WEBHOOK_SECRET="")
    assert unsigned.exit_code == 1 and "STRIPE_WEBHOOK_SECRET is not set" in unsigned.stderr


def test_simulate_against_a_service_that_is_not_running_exits_1(cli):
    result = cli("simulate", "stripe", "checkout", "--user-id", "1", "--plan", "premium_week", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1 and "cannot reach" in result.stderr
