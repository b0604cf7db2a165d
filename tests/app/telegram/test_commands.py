"""Bot commands, answered by the worker: /start, /buy, /status, /paysupport."""
from __future__ import annotations

import pytest

from app.plans import STAR_SUBSCRIPTION_PERIOD
from app.telegram import commands, payments
from simulate import telegram_updates as updates
from tests.support.delivery import deliver
from tests.support.telegram import PUBLIC_URL, payment_update, telegram_webhook, wait_until_done


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def run_command(client, user_id: int, text: str, status: str = "processed"):
    update = updates.command_update(user_id, text)
    row = deliver(client, telegram_webhook(update))
    assert (row.external_id, row.status) == (f"update:{update['update_id']}", status), row.error
    return row


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("/start", ("start", "")),
        ("/buy@entitle_bot premium_week", ("buy", "premium_week")),
        ("/PaySupport", ("paysupport", "")),
        ("/launch", None),
        ("buy", None),
        ("", None),
    ],
)
def test_parse_knows_our_commands_only(text, parsed):
    assert commands.parse(text) == parsed


def test_start_welcomes_with_a_button_that_opens_the_mini_app(client, worker, telegram_api):
    run_command(client, 42, "/start")

    (sent,) = telegram_api.calls_to("sendMessage")
    assert sent.params["chat_id"] == "42"
    assert "Hello, Test!" in sent.params["text"]
    (button,) = sent.json("reply_markup")["inline_keyboard"][0]
    assert button["web_app"] == {"url": f"{PUBLIC_URL}/app"}


def test_buy_sends_every_stars_plan_at_its_catalogue_price(client, worker, telegram_api, plans):
    run_command(client, 42, "/buy")

    invoices = {call.params["title"]: call for call in telegram_api.calls_to("sendInvoice")}
    one_off = [p for p in plans if p.sold_for_stars and not p.stars_subscription]
    assert set(invoices) == {p.title for p in one_off}
    for plan in one_off:
        call = invoices[plan.title]
        assert (call.params["chat_id"], call.params["currency"], call.params["provider_token"]) == ("42", "XTR", "")
        assert [price["amount"] for price in call.json("prices")] == [plan.stars]
        payload = payments.decode_payload(call.params["payload"])
        assert (payload.plan, payload.user_id) == (plan.key, 42)
        assert "subscription_period" not in call.params

    # sendInvoice cannot sell a subscription: a subscription plan comes as an invoice link on a button.
    (link,) = telegram_api.calls_to("createInvoiceLink")
    month = plans.get("premium_month")
    assert (link.params["currency"], link.json("prices")[0]["amount"]) == ("XTR", month.stars)
    assert link.params["subscription_period"] == str(STAR_SUBSCRIPTION_PERIOD)
    offer = next(c for c in telegram_api.calls_to("sendMessage") if month.title in c.params["text"])
    (button,) = offer.json("reply_markup")["inline_keyboard"][0]
    assert button["url"].startswith("https://t.me/$")
    assert "250 ⭐ every 30 days" in button["text"]


def test_buy_with_a_plan_sends_only_that_plan(client, worker, telegram_api):
    run_command(client, 42, "/buy premium_week")

    assert [c.params["title"] for c in telegram_api.calls_to("sendInvoice")] == ["Premium — 7 days"]
    assert telegram_api.calls_to("createInvoiceLink") == []


def test_buy_with_an_unknown_plan_lists_the_plans(client, worker, telegram_api):
    run_command(client, 42, "/buy gold")

    (sent,) = telegram_api.calls_to("sendMessage")
    assert "no plan called 'gold'" in sent.params["text"]
    assert "premium_week" in sent.params["text"]
    assert telegram_api.calls_to("sendInvoice") == []


def test_status_lists_what_the_user_holds(client, worker, telegram_api, plans):
    run_command(client, 42, "/status")
    assert "nothing active" in telegram_api.calls_to("sendMessage")[-1].params["text"]

    assert deliver(client, telegram_webhook(payment_update(42, plans.get("supporter_lifetime"), charge_id="stx-status"))).status == "processed"
    wait_until_done("confirm:stx-status")  # the thank-you, sent after the grant, is not the reply read below
    run_command(client, 42, "/status")

    assert "• supporter for good" in telegram_api.calls_to("sendMessage")[-1].params["text"]


def test_paysupport_answers_with_the_payment_references(client, worker, telegram_api, plans):
    assert deliver(client, telegram_webhook(payment_update(42, plans.get("premium_week"), charge_id="stx-support"))).status == "processed"
    wait_until_done("confirm:stx-support")  # the thank-you, sent after the grant, is not the reply read below

    run_command(client, 42, "/paysupport")

    text = telegram_api.calls_to("sendMessage")[-1].params["text"]
    assert text.startswith("Payment support")
    assert "Premium — 7 days" in text and "reference: stx-support" in text


def test_a_reply_telegram_fails_to_take_is_retried_until_it_is_sent(client, worker, telegram_api):
    telegram_api.fail("sendMessage", error_code=429, description="Too Many Requests: retry after 1", times=2)

    event = run_command(client, 42, "/status")

    assert event.attempts == 3
    assert len(telegram_api.calls_to("sendMessage")) == 3


def test_a_user_who_blocked_the_bot_is_not_retried(client, worker, telegram_api):
    telegram_api.fail("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user")

    event = run_command(client, 42, "/status", status="ignored")

    assert event.attempts == 1
    assert event.error == "bot was blocked by the user (403)"


def test_an_update_without_a_last_name_or_username_clears_them_and_keeps_the_language(client, worker):
    from app import users

    run_command(client, 42, "/start")
    assert (users.find_user(42).last_name, users.find_user(42).username) == ("User 42", "user42")
    update = updates.command_update(42, "/status")
    for key in ("last_name", "username", "language_code"):
        del update["message"]["from"][key]  # as Telegram sends a user who has none (and a client that sends no language)

    row = deliver(client, telegram_webhook(update))

    assert row.status == "processed", row.error
    user = users.find_user(42)
    assert (user.first_name, user.last_name, user.username, user.language_code) == ("Test", None, None, "en")
