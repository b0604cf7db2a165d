"""Payers cancel and resume from the bot and the Mini App: the calls Telegram and Stripe receive, the states and the answers."""
from __future__ import annotations

import json

import pytest

from app.models import Event, Subscription
from simulate import telegram_updates as updates
from tests.support.delivery import deliver
from tests.support.stripe import stripe_env, stripe_webhook, token_for
from tests.support.subscriptions import CardSubscription, StarSubscription, in_seconds
from tests.support.telegram import telegram_webhook
from tests.support.waiting import wait_for

DAY = 86400


@pytest.fixture
def env(env, stripe_api):
    """The subscriptions' environment plus the Stripe stand-in."""
    return {**env, **stripe_env(stripe_api)}


def _edits(telegram_api) -> list[tuple[str, str, str]]:
    calls = telegram_api.calls_to("editUserStarSubscription")
    return [(c.params["user_id"], c.params["telegram_payment_charge_id"], c.params["is_canceled"].lower()) for c in calls]


def _said(telegram_api, user_id: int) -> list[str]:
    return [c.params["text"] for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == str(user_id)]


def _command(client, telegram_api, user_id: int, text: str) -> str:
    # Messages written earlier (a payment's thank-you) are sent first, so the last one said is the answer.
    wait_for(lambda: not Event.select().where(Event.status == "pending").exists(), message="earlier messages sent")
    before = len(_said(telegram_api, user_id))
    deliver(client, telegram_webhook(updates.command_update(user_id, text)))
    wait_for(lambda: len(_said(telegram_api, user_id)) > before, message=f"the answer to {text}")
    return _said(telegram_api, user_id)[-1]


def test_cancel_in_the_bot_calls_edit_user_star_subscription_for_the_payer_and_its_charge_once(client, worker, settings, telegram_api):
    subscription = StarSubscription(client, settings, 5201)
    subscription.pay(in_seconds(20 * DAY))
    assert subscription.pay(in_seconds(30 * DAY)).status == "processed"  # a renewal: its charge names the subscription now

    first = _command(client, telegram_api, 5201, "/cancel")
    second = _command(client, telegram_api, 5201, "/cancel")

    assert _edits(telegram_api) == [("5201", subscription.charges[-1], "true")]
    assert first.startswith("Canceled.") and "will not renew" in first and "/resume" in first
    assert second.startswith("Already canceled, nothing changed") and "Premium — 30 days: canceled" in second
    record = subscription.record
    assert (record.state, record.canceled_by) == ("canceled", "service")


def test_the_mini_app_cancels_and_resumes_a_star_subscription_and_a_second_cancel_changes_nothing(app, client, worker, settings, telegram_api):
    subscription = StarSubscription(client, settings, 5202)
    subscription.pay(in_seconds(20 * DAY))
    headers = token_for(app, 5202)
    listed = client.get("/api/subscriptions", headers=headers).get_json()["subscriptions"]
    assert [(s["state"], s["provider"], s["title"], s["renews"]) for s in listed] == [("active", "telegram", "Premium — 30 days", True)]
    sid = listed[0]["id"]

    canceled = client.post(f"/api/subscriptions/{sid}/cancel", headers=headers)
    again = client.post(f"/api/subscriptions/{sid}/cancel", headers=headers)
    resumed = client.post(f"/api/subscriptions/{sid}/resume", headers=headers)

    assert canceled.status_code == 200 and canceled.get_json()["subscription"]["state"] == "canceled"
    assert canceled.get_json()["changed"] is True
    assert again.status_code == 200 and again.get_json()["changed"] is False
    assert resumed.status_code == 200 and resumed.get_json()["subscription"]["state"] == "active"
    charge = subscription.charges[0]
    assert _edits(telegram_api) == [("5202", charge, "true"), ("5202", charge, "false")]


def test_a_payer_cannot_touch_someone_elses_subscription(app, client, worker, settings, telegram_api):
    subscription = StarSubscription(client, settings, 5203)
    subscription.pay(in_seconds(20 * DAY))
    StarSubscription(client, settings, 5204).pay(in_seconds(20 * DAY))
    intruder = token_for(app, 5204)

    answer = client.post(f"/api/subscriptions/{subscription.record.id}/cancel", headers=intruder)

    assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "subscription_unknown"
    assert _edits(telegram_api) == [] and subscription.record.state == "active"
    assert client.post("/api/subscriptions/999999/resume", headers=intruder).status_code == 404


def test_one_canceled_in_telegram_is_resumed_by_the_payer_in_telegram(app, client, worker, settings, telegram_api):
    subscription = StarSubscription(client, settings, 5205)
    subscription.pay(in_seconds(20 * DAY))
    subscription.update("canceled")

    answer = client.post(f"/api/subscriptions/{subscription.record.id}/resume", headers=token_for(app, 5205))

    assert answer.status_code == 409 and answer.get_json()["error"]["code"] == "resume_in_telegram"
    assert "Settings" in answer.get_json()["error"]["message"]
    assert _edits(telegram_api) == [] and subscription.record.state == "canceled"


def test_with_two_subscriptions_cancel_offers_a_button_each_and_the_pressed_one_is_canceled(client, worker, settings, telegram_api):
    first, second = StarSubscription(client, settings, 5206), StarSubscription(client, settings, 5206)
    first.pay(in_seconds(20 * DAY))
    second.pay(in_seconds(25 * DAY))

    question = _command(client, telegram_api, 5206, "/cancel")
    [asked] = [c for c in telegram_api.calls_to("sendMessage") if c.params["text"] == question]
    markup = asked.params["reply_markup"]
    data = f"sub:cancel:{second.record.id}"
    assert "Which subscription" in question and data in markup and f"sub:cancel:{first.record.id}" in markup
    row = deliver(client, telegram_webhook(updates.callback_query_update(5206, data)))

    assert row.status == "processed", row.error
    assert _edits(telegram_api) == [("5206", second.charges[0], "true")]
    assert (first.record.state, second.record.state) == ("active", "canceled")
    assert len(telegram_api.calls_to("answerCallbackQuery")) == 1


@pytest.mark.parametrize("newest_first", [True, False])
def test_a_card_subscription_canceled_through_the_api_stays_canceled_whatever_order_stripes_events_arrive_in(
    app, client, worker, stripe_api, newest_first
):
    card = CardSubscription(stripe_api, 5210 + int(newest_first))
    start, end = in_seconds(-DAY), in_seconds(29 * DAY)
    active = card.state(start, end)
    deliver(client, stripe_webhook(card.event("invoice.paid", card.invoice(active, start, end))))
    record = Subscription.get(Subscription.key == card.id)

    answer = client.post(f"/api/subscriptions/{record.id}/cancel", headers=token_for(app, card.telegram_id))
    stale = card.event("customer.subscription.updated", active, previous_attributes={"status": "incomplete"})
    newest = card.event("customer.subscription.updated", stripe_api.subscriptions[card.id], previous_attributes={"cancel_at_period_end": False})
    for event in ([newest, stale] if newest_first else [stale, newest]):
        assert deliver(client, stripe_webhook(event)).status == "processed"

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["subscription"]["state"] == "canceled"
    assert stripe_api.subscriptions[card.id]["cancel_at_period_end"] is True
    current = Subscription.get_by_id(record.id)
    assert (current.state, current.canceled_by) == ("canceled", "service")


def test_the_backend_api_lists_a_users_subscriptions(client, worker, settings, cli):
    subscription = StarSubscription(client, settings, 5220)
    subscription.pay(in_seconds(20 * DAY))
    subscription.update("failed")
    key = json.loads(cli("apikeys", "create", "backend", "--json").stdout)["key"]

    answer = client.get("/api/v1/users/5220", headers={"Authorization": f"Bearer {key}"}).get_json()

    (listed,) = answer["subscriptions"]
    assert (listed["provider"], listed["plan"], listed["state"], listed["renews"]) == ("telegram", "premium_month", "past_due", False)
    assert listed["grace_until"] is not None and listed["period_end"] is not None
