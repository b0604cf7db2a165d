"""`entitle subscriptions list|cancel|resume` and the subscription lines of `customer show`, with the Bot API stand-in."""
from __future__ import annotations

import json

import pytest

from app import entitlements
from app.models import Grant
from tests.support.access import CHAT_A
from tests.support.subscriptions import StarSubscription, in_seconds, subscriptions_env
from tests.support.waiting import wait_for

DAY = 86400


@pytest.fixture
def env(env, telegram_api, tmp_path):
    """The Telegram environment with `premium`'s chats and a Star subscription plan."""
    return subscriptions_env(env, telegram_api, tmp_path)


@pytest.fixture
def paid(client, worker, settings):
    """User 5401's Star subscription, paid for 20 days."""
    subscription = StarSubscription(client, settings, 5401)
    subscription.pay(in_seconds(20 * DAY))
    return subscription


def test_list_shows_each_subscription_with_its_state_and_filters_by_state_and_user(cli, paid):
    listed = cli("subscriptions", "list", "--json")
    canceled = cli("subscriptions", "list", "--state", "canceled", "--json")
    table = cli("subscriptions", "list", "--user", "5401")

    rows = json.loads(listed.stdout)
    assert [(r["user"], r["provider"], r["plan"], r["state"], r["renews"]) for r in rows] == [(5401, "telegram", "premium_month", "active", True)]
    assert json.loads(canceled.stdout) == []
    assert table.exit_code == 0 and "active" in table.stdout and "renews" in table.stdout


def test_a_state_that_does_not_exist_is_a_usage_error(cli, database):
    result = cli("subscriptions", "list", "--state", "paused")

    assert result.exit_code == 2 and "active, canceled, past_due, ended" in result.stderr


def test_cancel_then_resume_call_telegram_and_a_second_cancel_changes_nothing(cli, paid, telegram_api):
    sid = str(paid.record.id)

    first = cli("subscriptions", "cancel", sid)
    second = cli("subscriptions", "cancel", sid, "--json")
    resumed = cli("subscriptions", "resume", sid)

    assert first.exit_code == 0 and "canceled; held until" in first.stdout and "will not renew" in first.stdout
    assert json.loads(second.stdout)["changed"] is False and json.loads(second.stdout)["state"] == "canceled"
    assert resumed.exit_code == 0 and "resumed" in resumed.stdout
    calls = [(c.params["telegram_payment_charge_id"], c.params["is_canceled"].lower()) for c in telegram_api.calls_to("editUserStarSubscription")]
    assert calls == [(paid.charges[0], "true"), (paid.charges[0], "false")]


def test_cancel_now_ends_the_subscription_and_its_access_without_a_refund_and_says_so(cli, paid, telegram_api):
    telegram_api.set_member(CHAT_A, 5401, "member")

    result = cli("subscriptions", "cancel", str(paid.record.id), "--now")

    assert result.exit_code == 0 and "ended now" in result.stdout and "nothing was refunded" in result.stdout
    assert paid.record.state == "ended"
    assert entitlements.end_for(5401, "premium") is None
    assert Grant.get(Grant.reference == paid.charges[0]).revoke_reason == "canceled"
    assert telegram_api.calls_to("refundStarPayment") == []
    wait_for(lambda: telegram_api.calls_to("unbanChatMember"), message="removal from the chat")


def test_an_unknown_subscription_fails_with_exit_code_1(cli, database):
    result = cli("subscriptions", "resume", "424242")

    assert result.exit_code == 1 and "no subscription with id 424242" in result.stderr


def test_customer_show_lists_the_subscriptions_state_changes(cli, paid):
    paid.update("canceled")

    shown = cli("customer", "show", "5401", "--json")

    lines = [line for line in json.loads(shown.stdout)["timeline"] if line["kind"] == "subscription"]
    assert [(line["detail"]["from"], line["detail"]["to"], line["detail"]["actor"]) for line in lines] == [
        (None, "active", "telegram"), ("active", "canceled", "telegram"),
    ]
    assert "active → canceled by telegram" in lines[1]["summary"]
