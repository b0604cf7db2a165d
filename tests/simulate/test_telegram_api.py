"""The fake Bot API speaks the wire protocol pyTelegramBotAPI expects, and our payloads parse."""
from __future__ import annotations

import pytest
import requests
from telebot import types
from telebot.apihelper import ApiTelegramException

from app.telegram.client import describe_error, make_bot, mask_tokens
from simulate.telegram_updates import (
    command_update,
    new_charge_id,
    pre_checkout_query_update,
    refunded_payment_update,
    successful_payment_update,
)
from simulate.telegram_api import FakeTelegramAPI

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET_PART = TOKEN.split(":")[1]
STARS = [types.LabeledPrice("Premium — 30 days", 250)]


@pytest.fixture
def bot(telegram_api):  # noqa: F811
    return make_bot(TOKEN, telegram_api.url)


def test_get_me_answers_a_bot_user_for_the_token(bot, telegram_api):  # noqa: F811
    me = bot.get_me()

    assert me.is_bot is True
    assert me.id == 123456789
    assert telegram_api.token_seen == TOKEN
    assert [call.method for call in telegram_api.calls] == ["getMe"]


def test_send_invoice_in_stars_records_xtr_prices_and_an_empty_provider_token(bot, telegram_api):  # noqa: F811
    message = bot.send_invoice(42, "Premium", "30 days of premium", "plan:premium_month", "", "XTR", STARS)

    (call,) = telegram_api.calls_to("sendInvoice")
    assert call.params["currency"] == "XTR"
    assert call.params["provider_token"] == ""
    assert call.json("prices") == [{"label": "Premium — 30 days", "amount": 250}]
    assert call.params["payload"] == "plan:premium_month"
    assert message.invoice.currency == "XTR"
    assert message.invoice.total_amount == 250
    assert message.chat.id == 42


def test_create_invoice_link_for_a_star_subscription_returns_the_link(bot, telegram_api):  # noqa: F811
    link = bot.create_invoice_link(
        "Premium", "30 days", "plan:premium_month", "", "XTR", STARS, subscription_period=2592000
    )

    assert link.startswith("https://t.me/$")
    (call,) = telegram_api.calls_to("createInvoiceLink")
    assert call.params["subscription_period"] == "2592000"


def test_a_subscription_period_other_than_30_days_is_refused(bot, telegram_api):  # noqa: F811
    with pytest.raises(ApiTelegramException) as raised:
        bot.create_invoice_link("Premium", "7 days", "p", "", "XTR", STARS, subscription_period=604800)

    assert describe_error(raised.value) == "SUBSCRIPTION_PERIOD_INVALID (400)"


def test_refund_star_payment_records_the_user_and_the_charge(bot, telegram_api):  # noqa: F811
    assert bot.refund_star_payment(42, "stxCHARGE1") is True

    (call,) = telegram_api.calls_to("refundStarPayment")
    assert call.params == {"user_id": "42", "telegram_payment_charge_id": "stxCHARGE1"}


def test_edit_user_star_subscription_records_the_cancellation(bot, telegram_api):  # noqa: F811
    assert bot.edit_user_star_subscription(42, "stxCHARGE1", is_canceled=True) is True

    (call,) = telegram_api.calls_to("editUserStarSubscription")
    assert call.flag("is_canceled") is True


def test_answer_pre_checkout_query_and_send_message(bot, telegram_api):  # noqa: F811
    assert bot.answer_pre_checkout_query("777", ok=False, error_message="That plan is gone.") is True
    sent = bot.send_message(42, "Premium is active until 2031-01-01.")

    answer = telegram_api.calls_to("answerPreCheckoutQuery")[0]
    assert answer.flag("ok") is False
    assert answer.params["error_message"] == "That plan is gone."
    assert sent.text == "Premium is active until 2031-01-01."
    assert [call.method for call in telegram_api.calls] == ["answerPreCheckoutQuery", "sendMessage"]


def test_set_webhook_with_a_secret_and_allowed_updates_shows_in_webhook_info(bot, telegram_api):  # noqa: F811
    bot.set_webhook(
        "https://entitle.example/webhooks/telegram",
        secret_token="s3cr3t",
        allowed_updates=["message", "pre_checkout_query"],
    )
    info = bot.get_webhook_info()

    (call,) = telegram_api.calls_to("setWebhook")
    assert call.params["secret_token"] == "s3cr3t"
    assert call.json("allowed_updates") == ["message", "pre_checkout_query"]
    assert info.url == "https://entitle.example/webhooks/telegram"
    assert info.allowed_updates == ["message", "pre_checkout_query"]

    assert bot.delete_webhook() is True
    assert bot.get_webhook_info().url == ""


def test_an_injected_failure_raises_and_is_described_without_the_token(bot, telegram_api):  # noqa: F811
    telegram_api.fail("refundStarPayment", times=1)

    with pytest.raises(ApiTelegramException) as raised:
        bot.refund_star_payment(42, "stxCHARGE1")

    message = describe_error(raised.value)
    assert message == "CHARGE_ALREADY_REFUNDED (400)"
    assert SECRET_PART not in message
    # pyTelegramBotAPI keeps the response, whose URL holds the token; mask_tokens hides it.
    assert SECRET_PART in raised.value.result.url
    assert SECRET_PART not in mask_tokens(raised.value.result.url)
    # times=1: the next call succeeds, and both were recorded.
    assert bot.refund_star_payment(42, "stxCHARGE1") is True
    assert len(telegram_api.calls_to("refundStarPayment")) == 2


def test_a_failure_lasts_until_reset(bot, telegram_api):  # noqa: F811
    telegram_api.fail("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user")

    for _ in range(2):
        with pytest.raises(ApiTelegramException) as raised:
            bot.send_message(42, "hello")
        assert raised.value.error_code == 403
        assert describe_error(raised.value) == "bot was blocked by the user (403)"

    telegram_api.reset()
    assert bot.send_message(42, "hello").text == "hello"
    assert len(telegram_api.calls) == 1


def test_an_unreachable_server_is_described_without_the_token(telegram_api):  # noqa: F811
    url = telegram_api.url
    telegram_api.stop()
    bot = make_bot(TOKEN, url)

    with pytest.raises(requests.ConnectionError) as raised:
        bot.get_me()

    assert SECRET_PART in str(raised.value)
    assert SECRET_PART not in describe_error(raised.value)
    assert SECRET_PART not in mask_tokens(str(raised.value))


def test_two_bots_with_different_servers_and_tokens_each_reach_their_own(telegram_api):  # noqa: F811
    other_token = "987654321:BBGotherotherotherotherotherother12"
    with FakeTelegramAPI() as other_api:
        first = make_bot(TOKEN, telegram_api.url)
        second = make_bot(other_token, other_api.url + "/")

        first.send_message(1, "to the first")
        second.send_message(2, "to the second")
        first.get_me()

    assert [(c.method, c.token) for c in telegram_api.calls] == [("sendMessage", TOKEN), ("getMe", TOKEN)]
    assert [(c.method, c.token) for c in other_api.calls] == [("sendMessage", other_token)]
    assert other_api.calls[0].params["text"] == "to the second"


def test_the_fake_reads_form_and_json_bodies_and_ignores_method_case(telegram_api):  # noqa: F811
    base = f"{telegram_api.url}/bot{TOKEN}"

    form = requests.post(f"{base}/SENDMESSAGE", data={"chat_id": "42", "text": "form"}, timeout=5)
    body = requests.post(
        f"{base}/sendInvoice",
        json={
            "chat_id": 42, "title": "T", "description": "D", "payload": "p",
            "provider_token": "", "currency": "XTR", "prices": [{"label": "x", "amount": 5}],
        },
        timeout=5,
    )

    assert form.json()["ok"] is True
    assert body.json()["result"]["invoice"]["total_amount"] == 5
    first, second = telegram_api.calls
    assert (first.method, first.params["text"]) == ("sendMessage", "form")
    assert second.params["chat_id"] == "42"
    assert second.json("prices") == [{"label": "x", "amount": 5}]


def test_the_fake_accepts_multipart_uploads(bot, telegram_api):  # noqa: F811
    bot.set_webhook("https://entitle.example/webhooks/telegram", certificate=("cert.pem", b"PEM"))

    (call,) = telegram_api.calls_to("setWebhook")
    assert call.params["url"] == "https://entitle.example/webhooks/telegram"
    assert call.files == {"certificate": b"PEM"}


def test_unknown_methods_paths_and_tokens_are_refused(telegram_api):  # noqa: F811
    unknown = requests.get(f"{telegram_api.url}/bot{TOKEN}/sendTelepathy", timeout=5)
    outside = requests.get(f"{telegram_api.url}/getMe", timeout=5)

    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
    assert outside.status_code == 404

    with FakeTelegramAPI(token=TOKEN) as strict:
        wrong = requests.get(f"{strict.url}/bot1:wrong/getMe", timeout=5)
        assert (wrong.status_code, wrong.json()["description"]) == (401, "Unauthorized")
        assert strict.calls == []


def test_a_missing_required_parameter_is_a_bad_request(telegram_api):  # noqa: F811
    answer = requests.post(f"{telegram_api.url}/bot{TOKEN}/refundStarPayment", data={"user_id": "42"}, timeout=5)

    assert answer.status_code == 400
    assert answer.json()["description"] == "Bad Request: parameter telegram_payment_charge_id is required"


# -- Update builders ----------------------------------------------------------------------


def test_pre_checkout_query_update_parses():
    update = types.Update.de_json(pre_checkout_query_update(42, "plan:premium_month", 250, query_id="q1"))

    query = update.pre_checkout_query
    assert (query.id, query.from_user.id, query.currency) == ("q1", 42, "XTR")
    assert (query.total_amount, query.invoice_payload) == (250, "plan:premium_month")


def test_successful_payment_update_parses_with_subscription_fields():
    charge_id = new_charge_id()
    payload = successful_payment_update(
        42, "plan:premium_month", 250, charge_id,
        subscription_expiration_date=1_900_000_000, is_first_recurring=True,
    )

    message = types.Update.de_json(payload).message
    payment = message.successful_payment
    assert message.content_type == "successful_payment"
    assert (message.from_user.id, message.chat.id) == (42, 42)
    assert payment.telegram_payment_charge_id == charge_id
    assert (payment.currency, payment.total_amount, payment.invoice_payload) == ("XTR", 250, "plan:premium_month")
    assert payment.subscription_expiration_date == 1_900_000_000
    assert (payment.is_recurring, payment.is_first_recurring) == (True, True)


def test_a_one_off_payment_leaves_the_subscription_fields_out():
    payload = successful_payment_update(42, "plan:lifetime", 1000, "stxONE")

    assert set(payload["message"]["successful_payment"]) == {
        "currency", "total_amount", "invoice_payload", "telegram_payment_charge_id", "provider_payment_charge_id",
    }
    payment = types.Update.de_json(payload).message.successful_payment
    assert (payment.is_recurring, payment.subscription_expiration_date) == (None, None)


def test_refunded_payment_update_parses():
    message = types.Update.de_json(refunded_payment_update(42, "plan:premium_month", 250, "stxCHARGE1")).message

    refund = message.refunded_payment
    assert (refund.currency, refund.total_amount, refund.invoice_payload) == ("XTR", 250, "plan:premium_month")
    assert refund.telegram_payment_charge_id == "stxCHARGE1"
    assert message.from_user.id == 42


def test_command_update_parses_as_a_bot_command():
    message = types.Update.de_json(command_update(42, "/start premium")).message

    assert message.text == "/start premium"
    assert message.entities[0].type == "bot_command"
    assert message.entities[0].length == len("/start")


def test_update_ids_increase():
    ids = [pre_checkout_query_update(1, "p", 1)["update_id"], command_update(1, "/start")["update_id"]]

    assert ids[1] == ids[0] + 1
