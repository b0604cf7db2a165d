"""`POST /webhooks/telegram`: verified at the door, pre-checkout answered in the request, payments granted once.

Telegram is replaced at the wire by the fake Bot API; the worker is a real Dramatiq worker on Redis.
"""
from __future__ import annotations

import json
import threading

import pytest
import requests
from flask_jwt_extended import create_access_token

from app.models import Event, Grant, LedgerEntry, User
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.support.metrics import metric
from tests.support.telegram import HEADERS, SECRET, payment_update, post_update, status_of, telegram_env, wait_until_done


@pytest.fixture
def env(env, telegram_api):
    """The suite's environment plus the Telegram settings (tests/support/telegram.py)."""
    return telegram_env(env, telegram_api)


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def pre_checkout(user_id: int, plan_key: str, amount: int, currency: str = "XTR", invoice_for: int | None = None) -> dict:
    payload = payments.encode_payload(plan_key, invoice_for or user_id)
    return updates.pre_checkout_query_update(user_id, payload, amount, currency=currency, query_id="q-1")


# -- the door ------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]}])
def test_a_missing_or_wrong_secret_is_401_and_records_nothing(client, plans, headers):
    before = metric(client, "webhook_requests_total", provider="telegram", status="401")

    response = post_update(client, payment_update(42, plans.get("premium_week")), headers=headers)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_secret_token"
    assert Event.select().count() == 0
    assert metric(client, "webhook_requests_total", provider="telegram", status="401") == before + 1


def test_without_a_configured_secret_every_update_is_refused(env, database, broker):
    from app.config import load_settings
    from webapp import create_app

    env.pop("TELEGRAM_WEBHOOK_SECRET")
    client = create_app(load_settings(environ=env, env_file="/none")).test_client()

    response = client.post("/webhooks/telegram", json=updates.command_update(1, "/start"), headers=HEADERS)

    assert response.status_code == 503
    assert Event.select().count() == 0


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"no_update_id": true}', b'{"update_id": 1, "message": {"text": "x"}}'])
def test_a_malformed_update_is_400(client, body):
    response = client.post("/webhooks/telegram", data=body, headers={**HEADERS, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_update"
    assert Event.select().count() == 0


def _channel_post() -> dict:
    # Posts in channels have no sender (`from`), only the channel as `sender_chat`.
    channel = {"id": -1001234567890, "type": "channel", "title": "News"}
    return {"update_id": 6, "channel_post": {"message_id": 9, "sender_chat": channel, "chat": channel, "date": 1700000000, "text": "hi"}}


def _group_message_without_sender() -> dict:
    update = updates.command_update(1, "/status")
    group = {"id": -1009876543210, "type": "supergroup", "title": "Fans"}
    del update["message"]["from"]
    update["message"].update(chat=group, sender_chat=group)
    return update


def test_updates_of_other_kinds_get_200_and_are_not_recorded(client):
    edited = {"update_id": 5, "edited_message": updates.command_update(1, "hello")["message"]}
    chatter = updates.command_update(1, "just saying hello")
    unknown_command = updates.command_update(1, "/launch")
    callback = {"update_id": 7, "callback_query": {"id": "4382", "from": {"id": 1, "is_bot": False, "first_name": "A"},
                                                    "chat_instance": "-5", "data": "x"}}

    for update in (edited, chatter, unknown_command, _channel_post(), _group_message_without_sender(), callback):
        response = post_update(client, update)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["status"] == "ignored"
    assert Event.select().count() == 0


def _payment(plans) -> dict:
    return payment_update(42, plans.get("premium_week"))


def _set(update: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    target = update
    for key in parents:
        target = target[key]
    if value is _ABSENT:
        del target[last]
    else:
        target[last] = value
    return update


_ABSENT = object()
_PAYMENT = "message.successful_payment"

# (which update, the field to break, its broken value, the field the error must name)
_BROKEN = [
    ("payment", f"{_PAYMENT}.invoice_payload", 42, f"{_PAYMENT}.invoice_payload"),
    ("payment", f"{_PAYMENT}.invoice_payload", ["e1"], f"{_PAYMENT}.invoice_payload"),
    ("payment", f"{_PAYMENT}.invoice_payload", "e1:" + "x" * 200, f"{_PAYMENT}.invoice_payload"),
    ("payment", f"{_PAYMENT}.total_amount", "75", f"{_PAYMENT}.total_amount"),
    ("payment", f"{_PAYMENT}.total_amount", True, f"{_PAYMENT}.total_amount"),
    ("payment", f"{_PAYMENT}.total_amount", 10**30, f"{_PAYMENT}.total_amount"),
    ("payment", f"{_PAYMENT}.total_amount", 0, f"{_PAYMENT}.total_amount"),
    ("payment", f"{_PAYMENT}.currency", 840, f"{_PAYMENT}.currency"),
    ("payment", f"{_PAYMENT}.currency", _ABSENT, f"{_PAYMENT}.currency"),
    ("payment", f"{_PAYMENT}.subscription_expiration_date", "soon", f"{_PAYMENT}.subscription_expiration_date"),
    ("payment", f"{_PAYMENT}.subscription_expiration_date", 10**20, f"{_PAYMENT}.subscription_expiration_date"),
    ("payment", f"{_PAYMENT}.is_recurring", "yes", f"{_PAYMENT}.is_recurring"),
    ("payment", _PAYMENT, "paid", _PAYMENT),
    ("payment", "message.from", None, "message.from"),
    ("payment", "message.from", _ABSENT, "message.from"),
    ("payment", "message.from.id", -75, "message.from.id"),
    ("payment", "message.from.id", 0, "message.from.id"),
    ("payment", "message.from.id", True, "message.from.id"),
    ("payment", "message.from.id", 2**53, "message.from.id"),
    ("payment", "message.from.id", "42", "message.from.id"),
    ("payment", "message.from.first_name", "x" * 300, "message.from.first_name"),
    ("payment", "message.from.username", "u" * 65, "message.from.username"),
    ("payment", "message.chat", None, "message.chat"),
    ("payment", "message.chat.id", "42", "message.chat.id"),
    ("payment", "message.date", "today", "message.date"),
    ("payment", "update_id", "1" * 100_000, "update_id"),
    ("payment", "update_id", 10**30, "update_id"),
    ("payment", "update_id", -1, "update_id"),
    ("refund", "message.refunded_payment.invoice_payload", {"plan": "x"}, "message.refunded_payment.invoice_payload"),
    ("refund", "message.refunded_payment.total_amount", None, "message.refunded_payment.total_amount"),
    ("refund", "message.from.id", 0, "message.from.id"),
    ("command", "message.from.id", -75, "message.from.id"),
    ("command", "message.from.id", 0, "message.from.id"),
    ("command", "message.from.id", True, "message.from.id"),
    ("command", "message.text", {"not": "text"}, "message.text"),
    ("command", "message.chat", None, "message.chat"),
    ("command", "update_id", "9" * 100_000, "update_id"),
    ("checkout", "pre_checkout_query.from", None, "pre_checkout_query.from"),
    ("checkout", "pre_checkout_query.from.id", -75, "pre_checkout_query.from.id"),
    ("checkout", "pre_checkout_query.from.id", True, "pre_checkout_query.from.id"),
    ("checkout", "pre_checkout_query.invoice_payload", 7, "pre_checkout_query.invoice_payload"),
    ("checkout", "pre_checkout_query.total_amount", "75", "pre_checkout_query.total_amount"),
    ("checkout", "pre_checkout_query.id", 42, "pre_checkout_query.id"),
]


def _update(kind: str, plans) -> dict:
    if kind == "payment":
        return _payment(plans)
    if kind == "refund":
        return updates.refunded_payment_update(42, payments.encode_payload("premium_week", 42), 75, updates.new_charge_id())
    if kind == "command":
        return updates.command_update(42, "/start")
    return pre_checkout(42, "premium_week", 75)


@pytest.mark.parametrize("kind, path, value, field", _BROKEN, ids=[f"{k}:{p}={str(v)[:12]}" for k, p, v, _ in _BROKEN])
def test_an_update_of_the_wrong_shape_is_400_naming_the_field_and_records_no_event_and_no_user(
    client, worker, plans, telegram_api, kind, path, value, field
):
    response = post_update(client, _set(_update(kind, plans), path, value))

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "malformed_update"
    assert error["message"].startswith(f"{field} must be")
    worker.join()
    assert Event.select().count() == 0
    assert User.select().count() == 0
    assert telegram_api.calls == []


# -- pre-checkout ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "update, expected",
    [
        (pre_checkout(42, "premium_week", 74), "price of this plan has changed"),
        (pre_checkout(42, "premium_week", 75, currency="USD"), "only be paid in Telegram Stars"),
        (pre_checkout(42, "no_such_plan", 75), "no longer on sale"),
        (pre_checkout(42, "premium_week", 75, invoice_for=43), "made for someone else"),
        (updates.pre_checkout_query_update(42, "plan:premium_week", 75, query_id="q-1"), "no longer valid"),
    ],
    ids=["wrong amount", "wrong currency", "unknown plan", "another payer", "foreign payload"],
)
def test_a_bad_checkout_is_answered_not_ok_with_a_message_in_the_response(client, telegram_api, update, expected):
    before = metric(client, "telegram_payments_total", result="checkout_declined")

    response = post_update(client, update)

    assert response.status_code == 200
    answer = response.get_json()
    assert answer["method"] == "answerPreCheckoutQuery"
    assert (answer["pre_checkout_query_id"], answer["ok"]) == ("q-1", False)
    assert expected in answer["error_message"]
    assert Event.select().count() == 0
    assert metric(client, "telegram_payments_total", result="checkout_declined") == before + 1


def test_a_valid_checkout_is_answered_ok_in_the_response(client, telegram_api):
    before = metric(client, "telegram_payments_total", result="checkout_approved")

    response = post_update(client, pre_checkout(42, "premium_month", 250))

    assert response.status_code == 200
    assert response.get_json() == {"method": "answerPreCheckoutQuery", "pre_checkout_query_id": "q-1", "ok": True}
    assert telegram_api.calls == []  # nothing waits on a queue or another call
    assert metric(client, "telegram_payments_total", result="checkout_approved") == before + 1


# -- payments ----------------------------------------------------------------------------


def test_a_payment_delivered_three_times_at_once_grants_once_and_confirms_once(
    app, client, live_server, worker, telegram_api, plans, cli
):
    paid_before = metric(client, "telegram_payments_total", result="paid")
    value_before = metric(client, "telegram_payment_value_total", currency="XTR")
    granted_before = metric(client, "entitlements_granted_total", source="telegram")
    ok_before = metric(client, "webhook_requests_total", provider="telegram", status="200")
    update = payment_update(42, plans.get("premium_week"), charge_id="stx-three-times")
    barrier = threading.Barrier(3)
    answers = []

    def deliver():
        barrier.wait()
        answers.append(requests.post(f"{live_server}/webhooks/telegram", json=update, headers=HEADERS, timeout=10))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [a.status_code for a in answers] == [200, 200, 200]
    wait_until_done("stx-three-times")
    wait_until_done("confirm:stx-three-times")
    worker.join()
    assert Event.select().where(Event.type == "successful_payment").count() == 1
    assert Grant.select().count() == 1
    (confirmation,) = telegram_api.calls_to("sendMessage")
    assert confirmation.params["chat_id"] == "42"
    assert "Premium — 7 days" in confirmation.params["text"]

    listed = json.loads(cli("entitlements", "list", "--user", "42", "--json").stdout)
    assert [(r["entitlement"], r["active"], r["source"], r["reference"]) for r in listed] == [
        ("premium", True, "telegram", "stx-three-times")
    ]
    with app.app_context():
        token = create_access_token(identity="42")
    me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [e["entitlement"] for e in me["entitlements"]] == ["premium"]
    assert me["entitlements"][0]["expires_at"] == listed[0]["expires_at"]

    assert metric(client, "telegram_payments_total", result="paid") == paid_before + 1
    assert metric(client, "telegram_payment_value_total", currency="XTR") == value_before + 75
    assert metric(client, "entitlements_granted_total", source="telegram") == granted_before + 1
    assert metric(client, "webhook_requests_total", provider="telegram", status="200") == ok_before + 3


def test_a_refund_reported_by_telegram_revokes_that_payment_and_moves_the_metrics(client, worker, telegram_api, plans):
    week = plans.get("premium_week")
    first = payment_update(42, week, charge_id="stx-kept")
    second = payment_update(42, week, charge_id="stx-refunded")
    for update in (first, second):
        post_update(client, update)
        wait_until_done(update["message"]["successful_payment"]["telegram_payment_charge_id"])
    refunded_before = metric(client, "telegram_payments_total", result="refunded")
    revoked_before = metric(client, "entitlements_revoked_total", source="telegram", reason="refund")

    refund = updates.refunded_payment_update(42, second["message"]["successful_payment"]["invoice_payload"], 75, "stx-refunded")
    response = post_update(client, refund)

    assert response.status_code == 200
    wait_until_done("refund:stx-refunded")
    kept, refunded = Grant.get(Grant.reference == "stx-kept"), Grant.get(Grant.reference == "stx-refunded")
    assert kept.revoked_at is None
    assert (refunded.revoked_at is not None, refunded.revoke_reason) == (True, "refund")
    assert metric(client, "telegram_payments_total", result="refunded") == refunded_before + 1
    assert metric(client, "entitlements_revoked_total", source="telegram", reason="refund") == revoked_before + 1


def test_a_refund_for_a_charge_not_seen_yet_is_recorded_and_remembered(client, worker):
    response = post_update(client, updates.refunded_payment_update(42, "e1:premium_week:42:00000000", 75, "stx-nobody"))

    assert response.status_code == 200
    event = wait_until_done("refund:stx-nobody", "processed")
    assert event.attempts == 1
    assert LedgerEntry.select().where((LedgerEntry.reference == "stx-nobody") & (LedgerEntry.action == "refund")).count() == 1


def test_a_command_is_recorded_once_per_update(client, worker, telegram_api):
    update = updates.command_update(42, "/status")

    first, again = post_update(client, update), post_update(client, update)

    assert (first.get_json()["status"], again.get_json()["status"]) == ("recorded", "duplicate")
    wait_until_done(f"update:{update['update_id']}")
    worker.join()
    assert len(telegram_api.calls_to("sendMessage")) == 1


def test_commands_in_groups_are_not_answered(client):
    update = updates.command_update(42, "/buy")
    update["message"]["chat"] = {"id": -100123, "type": "supergroup", "title": "Fans"}

    assert post_update(client, update).get_json()["status"] == "ignored"
    assert status_of(f"update:{update['update_id']}") is None


@pytest.mark.parametrize("charge_id", [None, "", ["a"], 42, "x" * 201])
def test_a_payment_with_a_malformed_charge_id_is_400_and_records_nothing(client, plans, charge_id):
    update = payment_update(42, plans.get("premium_week"))
    update["message"]["successful_payment"]["telegram_payment_charge_id"] = charge_id
    response = post_update(client, update)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_update"
    assert Event.select().count() == 0


def test_a_wrong_method_on_the_webhook_is_counted_too(client):
    before = metric(client, "webhook_requests_total", provider="telegram", status="405")
    assert client.get("/webhooks/telegram").status_code == 405
    assert metric(client, "webhook_requests_total", provider="telegram", status="405") == before + 1


# -- text no database could store ------------------------------------------------------------


def test_a_payers_name_with_nul_or_a_lone_surrogate_is_cleaned_and_the_payment_granted(client, worker, plans):
    update = payment_update(4711, plans.get("premium_week"))
    update["message"]["from"].update(first_name="Ann\x00a\ud800", last_name="\x00", username="ann\ud83d")
    update["message"]["chat"]["first_name"] = "Ann\x00a"

    response = post_update(client, update)

    assert response.status_code == 200, response.get_data(as_text=True)
    charge = update["message"]["successful_payment"]["telegram_payment_charge_id"]
    wait_until_done(charge)
    user = User.get(User.telegram_id == 4711)
    assert (user.first_name, user.username) == ("Anna\ufffd", "ann\ufffd")
    assert Grant.get(Grant.reference == charge).user_id == user.id


@pytest.mark.parametrize(
    "field, value",
    [
        ("invoice_payload", "e1:premium_week:4711:\x00"),
        ("invoice_payload", "e1:premium_week:4711:\ud800"),
        ("telegram_payment_charge_id", "stx\x00"),
        ("currency", "XT\ud800"),
    ],
)
def test_a_payment_field_the_service_acts_on_with_nul_or_a_lone_surrogate_is_400_naming_it(client, plans, field, value):
    update = payment_update(4711, plans.get("premium_week"))
    update["message"]["successful_payment"][field] = value

    response = post_update(client, update)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "malformed_update" and f"message.successful_payment.{field}" in error["message"]
    assert Event.select().count() == 0 and User.select().count() == 0


def test_a_command_with_nul_in_its_text_is_recorded_cleaned_and_answered(client, worker, telegram_api):
    update = updates.command_update(4712, "/sta\x00rt")
    update["message"]["from"]["first_name"] = "\ud800"

    response = post_update(client, update)

    assert response.status_code == 200, response.get_data(as_text=True)
    row = wait_until_done(f"update:{update['update_id']}")
    assert row.payload["message"]["text"] == "/start"
    assert telegram_api.calls_to("sendMessage")
