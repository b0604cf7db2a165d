"""The sandbox's own routes: what `simulate` and the benchmarks tell it, and what the service then finds."""
from __future__ import annotations

import json

import pytest
import requests
import stripe

from app.config import KNOWN_DEFAULT_SECRETS
from app.stripe.client import make_client
from bench import payloads
from simulate import sandbox as sandbox_module
from simulate import stripe_events as events
from simulate.sandbox import Sandbox, SandboxError, tell_stripe_checkouts, tell_telegram_charges


@pytest.fixture
def box():
    with Sandbox() as running:
        yield running


def refund_star_payment(box, user_id: int, charge_id: str) -> dict:
    url = f"{box.url}/bot{box.bot_token}/refundStarPayment"
    return requests.post(url, json={"user_id": user_id, "telegram_payment_charge_id": charge_id}, timeout=5).json()


def test_a_charge_told_to_the_sandbox_is_refunded_once(box):
    assert tell_telegram_charges(box.url, box.bot_token, [{"user_id": 5, "telegram_payment_charge_id": "stx1", "total_amount": 75}]) == 1

    assert refund_star_payment(box, 5, "stx1") == {"ok": True, "result": True}
    again = refund_star_payment(box, 5, "stx1")
    assert again["ok"] is False and again["description"] == "Bad Request: CHARGE_ALREADY_REFUNDED"
    assert refund_star_payment(box, 5, "stx-never-told")["description"] == "Bad Request: CHARGE_NOT_FOUND"
    assert refund_star_payment(box, 6, "stx1")["ok"] is False, "another user's charge"


def test_a_checkout_told_to_the_sandbox_is_read_back_with_its_line_items_and_refundable(box):
    intent = events.payment_intent(metadata={"telegram_user_id": "9"})
    session = events.checkout_session(client_reference_id="9", payment_intent=intent["id"])
    tell_stripe_checkouts(box.url, box.stripe_secret_key, [{"session": session, "prices": ["price_premium_week"], "payment_intent": intent}])

    client = make_client(box.stripe_secret_key, box.url, max_network_retries=0)
    found = client.v1.checkout.sessions.retrieve(session["id"], params={"expand": ["line_items"]})
    assert found.payment_status == "paid" and found.line_items.data[0].price.id == "price_premium_week"
    refund = client.v1.refunds.create(params={"payment_intent": intent["id"]})
    assert refund.status == "succeeded" and refund.amount == intent["amount"]


def test_the_sandbox_refuses_another_key_or_token_and_unknown_routes(box):
    with pytest.raises(SandboxError, match="401"):
        tell_stripe_checkouts(box.url, "sk_test_someone_else", [])
    with pytest.raises(SandboxError, match="401"):
        tell_telegram_charges(box.url, "1:other", [])
    with pytest.raises(SandboxError, match="not an entitle sandbox"):
        sandbox_module._tell(f"{box.url}/_sandbox/nothing", {})
    assert requests.get(f"{box.url}/elsewhere", timeout=5).status_code == 404
    bad = requests.post(f"{box.url}/_sandbox/stripe/checkout_sessions", data=b"{", timeout=5,
                        headers={"Authorization": f"Bearer {box.stripe_secret_key}"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "sandbox_refused"


def test_an_address_that_is_not_a_sandbox_is_named(telegram_api):
    with pytest.raises(SandboxError, match="is not an entitle sandbox"):
        tell_telegram_charges(telegram_api.url, "1:x", [])


def test_the_sandbox_says_what_it_holds(box):
    tell_telegram_charges(box.url, box.bot_token, [{"user_id": 1, "telegram_payment_charge_id": "stx2", "total_amount": 1}])
    held = requests.get(f"{box.url}/_sandbox", timeout=5).json()
    assert held["telegram"]["charges"] == 1 and held["stripe"]["checkout_sessions"] == 0


def test_the_bench_payloads_are_stored_at_its_sandbox(box):
    box.stripe_secret_key = box.stripe.secret_key = payloads.config.STRIPE_KEY
    payloads.use_sandbox(box.url)
    try:
        paid = payloads.payments(4, 9_000_000, ("stripe",))
    finally:
        payloads.use_sandbox(None)
    client = make_client(payloads.config.STRIPE_KEY, box.url, max_network_retries=0)
    for payment in paid:
        session_id = json.loads(payment.request["body"])["data"]["object"]["id"]
        found = client.v1.checkout.sessions.retrieve(session_id, params={"expand": ["line_items"]})
        assert [item.price.id for item in found.line_items.data] == [payloads.STRIPE_PRICE]


def test_production_refuses_the_webhook_secrets_the_sandbox_prints(box):
    env = box.environment()
    assert {env["TELEGRAM_WEBHOOK_SECRET"], env["STRIPE_WEBHOOK_SECRET"]} <= KNOWN_DEFAULT_SECRETS


def test_an_unknown_stripe_session_stays_unknown(box):
    client = make_client(box.stripe_secret_key, box.url, max_network_retries=0)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.retrieve("cs_test_unknown")


def test_the_events_told_with_a_checkout_are_in_stripes_event_list_and_a_malformed_one_is_refused(box):
    session = events.checkout_session(client_reference_id="9")
    made = [events.event("charge.succeeded", events.charge()), events.event("checkout.session.completed", session)]
    tell_stripe_checkouts(box.url, box.stripe_secret_key, [{"session": session, "prices": ["price_premium_week"], "events": made}])

    client = make_client(box.stripe_secret_key, box.url, max_network_retries=0)
    listed = client.v1.events.list(params={"types": ["checkout.session.completed"]})
    assert [(e.id, e.data.object["id"]) for e in listed.data] == [(made[1]["id"], session["id"])]
    assert requests.get(f"{box.url}/_sandbox", timeout=5).json()["stripe"]["events"] == 2

    bad = {**made[1], "id": "evt_bad", "created": "today"}
    with pytest.raises(SandboxError, match="events must be a list of Stripe events"):
        tell_stripe_checkouts(box.url, box.stripe_secret_key, [{"session": events.checkout_session(), "events": [bad]}])
    assert client.v1.events.list().data[0].id != "evt_bad"
