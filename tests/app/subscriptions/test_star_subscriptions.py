"""Star subscriptions as Telegram reports them (`subscription` updates), at the wire: signed updates, a real worker,
the Bot API stand-in and an operator's webhook receiver."""
from __future__ import annotations

import time
from datetime import timedelta

from prometheus_client import REGISTRY

from app import entitlements, users
from app.clock import from_timestamp
from app.models import EntitlementTransition, Event, Grant, SubscriptionChange
from tests.support.access import CHAT_A, CHAT_B
from tests.support.subscriptions import StarSubscription, in_seconds
from tests.support.telegram import post_update
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import add_endpoint
from simulate import telegram_updates as updates


def _transitions(user_id: int) -> list[tuple[str, str | None]]:
    user = users.find_user(user_id)
    rows = EntitlementTransition.select().where(EntitlementTransition.user == user).order_by(EntitlementTransition.sequence)
    return [(t.kind, t.reason) for t in rows]


def _changes(state: str) -> float:
    return REGISTRY.get_sample_value("subscription_changes_total", {"provider": "telegram", "state": state}) or 0.0


def _received(receiver, type_: str) -> list[dict]:
    return [m["data"] for m in receiver.accepted if m["type"] == type_]


def test_a_canceled_star_subscription_keeps_its_period_and_then_ends_once(client, worker, settings, telegram_api, cli, receiver):
    add_endpoint(cli, receiver)
    subscription = StarSubscription(client, settings, 5101)
    for chat in (CHAT_A, CHAT_B):
        telegram_api.set_member(chat, 5101, "member")
    period_end = in_seconds(10)
    assert subscription.pay(period_end).status == "processed"
    counted = _changes("canceled")

    assert subscription.update("canceled").status == "processed"

    record = subscription.record
    assert (record.state, record.canceled_by) == ("canceled", "payer")
    assert _changes("canceled") == counted + 1
    assert entitlements.end_for(5101, "premium") == from_timestamp(int(period_end))  # the paid period is kept
    wait_for(lambda: len(telegram_api.calls_to("unbanChatMember")) >= 2, timeout=40, message="removal from both chats")
    wait_for(lambda: subscription.record.state == "ended", timeout=20, message="the subscription ended")
    wait_for(lambda: _received(receiver, "subscription.ended"), timeout=20, message="subscription.ended sent")
    time.sleep(2.5)  # the expiry job runs twice more meanwhile

    assert _transitions(5101) == [("started", None), ("ended", "canceled")]
    assert len(telegram_api.calls_to("banChatMember")) == 2
    assert [d["reason"] for d in _received(receiver, "entitlement.ended")] == ["canceled"]
    ended = _received(receiver, "subscription.ended")
    assert len(ended) == 1 and ended[0]["subscription"]["state"] == "ended" and ended[0]["reason"] == "canceled"
    assert [d["subscription"]["state"] for d in _received(receiver, "subscription.canceled")] == ["canceled"]
    changes = [(c.previous, c.state, c.actor) for c in SubscriptionChange.select().order_by(SubscriptionChange.id)]
    assert changes == [(None, "active", "telegram"), ("active", "canceled", "telegram"), ("canceled", "ended", "system")]


def test_re_enabled_before_its_end_it_renews_and_nothing_ends(client, worker, settings):
    subscription = StarSubscription(client, settings, 5102)
    first_end = in_seconds(8)
    subscription.pay(first_end)
    subscription.update("canceled")

    assert subscription.update("active").status == "processed"
    assert subscription.record.state == "active"
    renewed_end = first_end + 30 * 86400
    assert subscription.pay(renewed_end).status == "processed"
    time.sleep(max(0.0, first_end + 1 - time.time()))  # past the first period's end

    assert _transitions(5102) == [("started", None), ("extended", None)]
    assert entitlements.end_for(5102, "premium") == from_timestamp(int(renewed_end))
    assert subscription.record.state == "active"


def test_a_failed_renewal_gives_grace_and_a_renewal_in_grace_takes_over_with_no_day_counted_twice(client, worker, settings, telegram_api):
    subscription = StarSubscription(client, settings, 5103)
    period_end = in_seconds(8)
    subscription.pay(period_end)

    assert subscription.update("failed").status == "processed"

    record = subscription.record
    assert record.state == "past_due"
    grace = Grant.get(Grant.source == "grace")
    assert grace.ends_at == from_timestamp(int(period_end)) + timedelta(days=0.0001)
    assert entitlements.end_for(5103, "premium") == grace.ends_at
    def told():
        return [c.params["text"] for c in telegram_api.calls_to("sendMessage") if "could not charge" in c.params["text"]]

    told = wait_for(told, message="the payer told of the failed renewal")
    assert len(told) == 1 and "/buy" in told[0] and "Premium — 30 days" in told[0]
    time.sleep(max(0.0, period_end + 1 - time.time()))  # past the paid period, inside the grace

    renewed_end = period_end + 30 * 86400
    assert subscription.pay(renewed_end).status == "processed"

    assert entitlements.end_for(5103, "premium") == from_timestamp(int(renewed_end))  # not a second more
    assert Grant.get_by_id(grace.id).revoke_reason == "renewed"
    assert subscription.record.state == "active"
    assert [kind for kind, _ in _transitions(5103)] == ["started", "extended", "extended"]


def test_without_a_renewal_the_entitlement_ends_when_the_grace_ends_once(client, worker, settings, telegram_api, cli, receiver):
    add_endpoint(cli, receiver, "subscription.past_due", "subscription.ended", "entitlement.ended")
    subscription = StarSubscription(client, settings, 5104)
    telegram_api.set_member(CHAT_A, 5104, "member")
    period_end = in_seconds(10)  # the failed renewal is reported while the paid period runs
    subscription.pay(period_end)
    subscription.update("failed")
    grace_end = from_timestamp(int(period_end)) + timedelta(days=0.0001)

    wait_for(lambda: subscription.record.state == "ended", timeout=60, message="the subscription ended after its grace")
    wait_for(lambda: telegram_api.calls_to("unbanChatMember"), timeout=20, message="removal from the chat")
    time.sleep(2.5)

    ended = EntitlementTransition.get(EntitlementTransition.kind == "ended")
    assert ended.reason == "expired" and ended.previous_end == grace_end
    assert _transitions(5104) == [("started", None), ("extended", None), ("ended", "expired")]
    assert subscription.record.end_reason == "expired"
    assert [m["type"] for m in receiver.accepted] == ["subscription.past_due", "entitlement.ended", "subscription.ended"]


def test_an_update_for_a_subscription_or_payer_not_known_here_fails_with_a_clear_reason(client, worker, settings):
    subscription = StarSubscription(client, settings, 5105)
    subscription.pay(in_seconds(3600))

    unknown = subscription.update("canceled", payload="e1:premium_month:5105:00000000")
    stranger = subscription.update("canceled", user_id=5199)

    assert unknown.status == "failed" and "no Star subscription with invoice payload" in unknown.error
    assert stranger.status == "failed" and "not user 5199's" in stranger.error
    assert subscription.record.state == "active"


def test_a_malformed_subscription_update_is_refused_naming_the_field_and_nothing_is_recorded(client):
    update = updates.subscription_update(5106, "e1:premium_month:5106:abcdef01", "canceled")
    del update["subscription"]["state"]

    response = post_update(client, update)

    assert response.status_code == 400
    assert response.get_json()["error"] == {"code": "malformed_update", "message": "subscription.state must be present"}
    assert Event.select().count() == 0


def _reminders(telegram_api, user_id: int) -> list[str]:
    return [c.params["text"] for c in telegram_api.calls_to("sendMessage")
            if c.params["chat_id"] == str(user_id) and "ends in" in c.params["text"]]


def test_a_canceled_subscription_gets_the_ending_reminder_and_a_renewing_one_does_not(client, worker, settings, telegram_api):
    renewing, canceled = StarSubscription(client, settings, 5107), StarSubscription(client, settings, 5108)
    three_days_and_a_bit = 3 * 86400 + 6  # the 3-day reminders fall due in six seconds
    renewing.pay(in_seconds(three_days_and_a_bit))
    canceled.pay(in_seconds(three_days_and_a_bit))
    canceled.update("canceled")

    wait_for(lambda: _reminders(telegram_api, 5108), timeout=40, message="the canceled subscription's reminder")
    time.sleep(3)  # the renewing one's fell due at the same moment

    [said] = _reminders(telegram_api, 5108)
    assert "ends in 3 days" in said and "canceled" in said and "/resume" in said
    assert _reminders(telegram_api, 5107) == []
