"""`POST /webhooks/stripe`: only correctly signed events get in; each is recorded once and handled once."""
from __future__ import annotations

import dataclasses
import json
import logging
import threading

import pytest
import requests

from app import inbox
from app.models import Event, EventLog, Grant
from simulate import stripe_events as events
from tests.support.metrics import sample
from tests.support.stripe import OLD_WEBHOOK_SECRET, now, post_event, signed, stripe_env
from tests.support.waiting import wait_for
from webapp import create_app


@pytest.fixture
def env(env, stripe_api):
    return {**env, **stripe_env(stripe_api)}


def completed(user_id: int = 42, stripe_api=None) -> dict:
    session = events.checkout_session(client_reference_id=str(user_id), metadata={"telegram_user_id": str(user_id), "plan": "premium_week"})
    if stripe_api is not None:
        stripe_api.put_checkout_session(session, prices=["price_premium_week"])
    return events.event("checkout.session.completed", session)


def rejected() -> float:
    return sample("stripe_webhooks_total", type="unverified", result="rejected")


# --- Verification at the door -----------------------------------------------------------------


def test_a_signed_event_is_recorded_queued_and_answered_200(client):
    event = completed()
    before = sample("stripe_webhooks_total", type="checkout.session.completed", result="accepted")
    requests_before = sample("webhook_requests_total", provider="stripe", status="200")

    response = post_event(client, event)

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "id": event["id"], "status": "pending", "result": "accepted"}
    row = Event.get(Event.external_id == event["id"])
    assert (row.provider, row.type, row.payload) == ("stripe", "checkout.session.completed", event)
    assert [h["action"] for h in inbox.event_to_dict(row, with_payload=True)["history"]] == ["received"]
    assert sample("stripe_webhooks_total", type="checkout.session.completed", result="accepted") == before + 1
    assert sample("webhook_requests_total", provider="stripe", status="200") == requests_before + 1


def _forged(event):
    return signed(event, secret="whsec_attacker_guess_000000")


def _stale(event):
    return signed(event, timestamp=now() - 301)


def _missing_header(event):
    body, headers = signed(event)
    del headers["Stripe-Signature"]
    return body, headers


def _one_byte_changed(event):
    body, headers = signed(event)
    changed = body.replace(b'"livemode": false', b'"livemode": falsE', 1)
    assert len(changed) == len(body) and changed != body
    return changed, headers


@pytest.mark.parametrize(
    "make, reason",
    [
        (_forged, "no_matching_signature"),
        (_stale, "timestamp_outside_tolerance"),
        (_missing_header, "header_missing"),
        (_one_byte_changed, "no_matching_signature"),
    ],
    ids=["forged signature", "older than 300 s", "missing header", "body changed by one byte"],
)
def test_an_unverifiable_delivery_is_400_and_nothing_is_recorded(client, make, reason):
    before, requests_before = rejected(), sample("webhook_requests_total", provider="stripe", status="400")
    body, headers = make(completed())

    response = client.post("/webhooks/stripe", data=body, headers=headers)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == reason
    assert Event.select().count() == 0
    assert rejected() == before + 1
    assert sample("webhook_requests_total", provider="stripe", status="400") == requests_before + 1


def test_a_body_over_the_limit_is_counted_as_a_413(client, app):
    before = sample("webhook_requests_total", provider="stripe", status="413")
    body = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)

    response = client.post("/webhooks/stripe", data=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert sample("webhook_requests_total", provider="stripe", status="413") == before + 1


def test_a_wrong_method_is_counted_as_a_405(client):
    before = sample("webhook_requests_total", provider="stripe", status="405")
    assert client.get("/webhooks/stripe").status_code == 405
    assert sample("webhook_requests_total", provider="stripe", status="405") == before + 1


def test_other_paths_are_not_counted_as_stripe_webhooks(client):
    before = sample("webhook_requests_total", provider="stripe", status="200")
    assert client.get("/api/plans").status_code == 200
    assert sample("webhook_requests_total", provider="stripe", status="200") == before


def test_the_old_secret_is_accepted_while_it_is_rotated(client):
    event = completed()
    response = post_event(client, event, secret=OLD_WEBHOOK_SECRET)
    assert response.status_code == 200
    assert Event.get(Event.external_id == event["id"]).status == "pending"


def test_without_a_webhook_secret_nothing_gets_in(settings, database, broker, caplog):
    app = create_app(dataclasses.replace(settings, stripe_webhook_secrets=()))
    response = post_event(app.test_client(), completed())
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "secret_missing"
    assert Event.select().count() == 0
    assert "STRIPE_WEBHOOK_SECRET is not set" in caplog.text


def test_a_redelivery_is_answered_200_without_a_second_row(client):
    event = completed()
    post_event(client, event)
    again = post_event(client, event)
    assert again.status_code == 200 and again.get_json()["result"] == "duplicate"
    assert Event.select().count() == 1


def reshaped(**fields) -> dict:
    """A checkout event with some top-level fields replaced (None removes the field)."""
    event = completed()
    for name, value in fields.items():
        if value is None:
            event.pop(name)
        else:
            event[name] = value
    return event


@pytest.mark.parametrize(
    "event, field",
    [
        (reshaped(id="evt_" + "x" * 100_000), "`id`"),
        (reshaped(type="checkout.session." + "x" * 100_000), "`type`"),
        (reshaped(id=""), "`id`"),
        (reshaped(type=5), "`type`"),
        (reshaped(id=None), "`id`"),
        (reshaped(data={"previous_attributes": {}}), "`data.object`"),
        (reshaped(data={"object": "cs_test_123"}), "`data.object`"),
    ],
    ids=["id_100kb", "type_100kb", "id_empty", "type_not_a_string", "id_missing", "data_object_missing", "data_object_not_an_object"],
)
def test_a_signed_event_of_the_wrong_shape_is_400_naming_the_field_and_stores_nothing(client, event, field):
    response = post_event(client, event)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "payload_invalid" and field in error["message"]
    assert Event.select().count() == 0


# --- Test mode and live mode ------------------------------------------------------------------


def test_a_live_event_reaching_a_test_key_is_recorded_ignored_with_a_warning(client, caplog):
    event = events.event("checkout.session.completed", completed()["data"]["object"], livemode=True)
    before = sample("stripe_webhooks_total", type="checkout.session.completed", result="livemode_mismatch")
    with caplog.at_level(logging.WARNING):
        response = post_event(client, event)

    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    row = Event.get(Event.external_id == event["id"])
    assert row.status == "ignored" and row.processed_at is not None
    assert "live-mode event" in EventLog.get(EventLog.event == row).detail
    assert "recorded as ignored" in caplog.text
    assert sample("stripe_webhooks_total", type="checkout.session.completed", result="livemode_mismatch") == before + 1


def test_a_test_event_reaching_a_live_key_is_recorded_ignored(settings, database, broker):
    app = create_app(dataclasses.replace(settings, stripe_secret_key="sk_live_" + "x" * 24))
    event = completed()
    response = post_event(app.test_client(), event)
    assert response.status_code == 200
    assert Event.get(Event.external_id == event["id"]).status == "ignored"


# --- End to end: concurrent deliveries, a refund, the operator's view -------------------------


def test_five_concurrent_deliveries_grant_once_and_a_refund_revokes(live_server, worker, cli, stripe_api):
    event = completed(user_id=4242, stripe_api=stripe_api)
    payment = event["data"]["object"]["payment_intent"]
    body, headers = signed(event)
    granted_before = sample("entitlements_granted_total", source="stripe")
    session = event["data"]["object"]
    revenue_before = sample("stripe_payment_value_total", currency=session["currency"])
    revoked_before = sample("entitlements_revoked_total", source="stripe", reason="refund")
    statuses: list[int] = []

    barrier = threading.Barrier(5)

    def deliver():
        barrier.wait()
        statuses.append(requests.post(f"{live_server}/webhooks/stripe", data=body, headers=headers, timeout=10).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert statuses == [200] * 5
    wait_for(lambda: Event.get(Event.external_id == event["id"]).status == "processed", message="checkout processed")
    assert Event.select().count() == 1
    assert Grant.select().where(Grant.reference == payment).count() == 1
    assert sample("entitlements_granted_total", source="stripe") == granted_before + 1
    assert session["amount_total"] > 0
    assert sample("stripe_payment_value_total", currency=session["currency"]) == revenue_before + session["amount_total"]

    refund = events.event("charge.refunded", events.charge(payment_intent=payment, amount=500, amount_refunded=500))
    refund_body, refund_headers = signed(refund)
    assert requests.post(f"{live_server}/webhooks/stripe", data=refund_body, headers=refund_headers, timeout=10).status_code == 200
    wait_for(lambda: Event.get(Event.external_id == refund["id"]).status == "processed", message="refund processed")

    [row] = json.loads(cli("entitlements", "list", "--user", "4242", "--json").stdout)
    assert (row["entitlement"], row["source"], row["reference"], row["active"]) == ("premium", "stripe", payment, False)
    assert row["revoked_at"] and row["revoke_reason"] == "refund"
    assert sample("entitlements_revoked_total", source="stripe", reason="refund") == revoked_before + 1


def test_an_unhandled_type_is_accepted_and_ends_ignored(client, worker):
    event = events.event("customer.created", events.customer())
    assert post_event(client, event).status_code == 200
    wait_for(lambda: Event.get(Event.external_id == event["id"]).status == "ignored", message="ignored")


def _object_with(**fields) -> dict:
    event = completed()
    event["data"]["object"].update(fields)
    return event


@pytest.mark.parametrize(
    "event, field",
    [
        (_object_with(customer="cus_\x00"), "`data.object.customer`"),
        (_object_with(customer="cus_\ud800"), "`data.object.customer`"),
        (_object_with(metadata={"plan": "premium_week", "telegram_user_id": "4\x002"}), "`data.object.metadata.telegram_user_id`"),
        (_object_with(id=12), "`data.object.id`"),
        (_object_with(id=None), "`data.object.id`"),
        (events.event("customer.subscription.updated", {**events.subscription(), "id": {"nested": True}}), "`data.object.id`"),
    ],
    ids=["nul", "lone_surrogate", "nul_in_metadata", "object_id_a_number", "object_id_null", "subscription_id_an_object"],
)
def test_a_signed_event_no_database_or_handler_could_read_is_400_naming_the_field(client, event, field):
    response = post_event(client, event)

    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "payload_invalid" and field in error["message"]
    assert Event.select().count() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": "telegram_user_id=42"},
        {"metadata": 12},
        {"client_reference_id": str(2**70)},
        {"client_reference_id": "\u0664\u0662", "metadata": {"plan": "premium_week", "telegram_user_id": "\u0664\u0662"}},
        {"client_reference_id": "\uff14\uff12"},
    ],
    ids=["metadata_a_string", "metadata_a_number", "user_id_beyond_2_53", "arabic_indic_digits", "fullwidth_digits"],
)
def test_a_stored_event_with_odd_fields_reaches_its_handlers_own_checks(client, worker, fields):
    event = _object_with(**fields)

    response = post_event(client, event)

    assert response.status_code == 200, response.get_data(as_text=True)
    row = wait_for(lambda: (r := Event.get(Event.external_id == event["id"])).status != "pending" and r, message="handled")
    assert row.status in ("ignored", "failed") and Grant.select().count() == 0
    assert not any(name in (row.error or "") for name in ("TypeError", "AttributeError", "KeyError", "ValueError", "Overflow"))
