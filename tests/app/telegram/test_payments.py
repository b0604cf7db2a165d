"""Invoice payloads and invoices: a plan and a payer in at most 128 bytes, Stars prices from the catalogue."""
from __future__ import annotations

import pytest
from telebot import types

from app.plans import STAR_SUBSCRIPTION_PERIOD, Catalogue, Plan
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.conftest import ROOT

CATALOGUE = Catalogue.from_file(ROOT / "plans.toml")


def test_a_payload_names_plan_and_payer_and_reads_back():
    text = payments.encode_payload("premium_month", 42)

    decoded = payments.decode_payload(text)
    assert (decoded.plan, decoded.user_id) == ("premium_month", 42)
    assert decoded.encode() == text


def test_two_invoices_for_the_same_plan_and_payer_have_different_payloads():
    assert payments.encode_payload("premium_week", 42) != payments.encode_payload("premium_week", 42)


def test_the_longest_plan_key_and_user_id_fit_in_128_bytes():
    text = payments.encode_payload("p" * 64, 10**19)

    assert len(text.encode()) <= 128
    assert payments.decode_payload(text).plan == "p" * 64


@pytest.mark.parametrize(
    "text", [None, "", "plan:premium_week", "e1:premium_week:42", "e1:Premium:42:0badc0de", "e1:premium_week:-4:0badc0de",
             "e1:premium_week:42:0badc0de:extra", "e2:premium_week:42:0badc0de"],
)
def test_payloads_that_are_not_ours_decode_to_none(text):
    assert payments.decode_payload(text) is None


def test_invoice_params_for_a_one_off_plan_are_one_xtr_price_and_no_provider():
    params = payments.invoice_params(CATALOGUE.get("premium_week"), 42)

    assert (params["currency"], params["provider_token"]) == ("XTR", "")
    assert [(p.label, p.amount) for p in params["prices"]] == [("Premium — 7 days", 75)]
    assert "subscription_period" not in params
    assert payments.decode_payload(params["payload"]).user_id == 42


def test_invoice_params_for_a_subscription_plan_carry_the_30_day_period():
    params = payments.invoice_params(CATALOGUE.get("premium_month"), 42)

    assert params["subscription_period"] == STAR_SUBSCRIPTION_PERIOD == 2592000


def test_a_plan_not_sold_for_stars_has_no_invoice():
    card_only = Plan(key="card_only", title="Card only", entitlement="premium", stripe_price="price_1")

    with pytest.raises(ValueError):
        payments.invoice_params(card_only, 42)


def decide(user_id: int, payload: str, amount: int, currency: str = "XTR") -> payments.Decision:
    query = types.Update.de_json(updates.pre_checkout_query_update(user_id, payload, amount, currency)).pre_checkout_query
    return payments.decide_pre_checkout(CATALOGUE, query)


def test_the_pre_checkout_decision_names_its_reason():
    payload = payments.encode_payload("premium_week", 42)

    assert decide(42, payload, 75) == payments.Decision(True, plan=CATALOGUE.get("premium_week"))
    assert decide(42, payload, 250).reason == "wrong_amount"
    assert decide(42, payload, 75, "EUR").reason == "wrong_currency"
    assert decide(43, payload, 75).reason == "wrong_payer"
    assert decide(42, payments.encode_payload("gone", 42), 75).reason == "unknown_plan"
    assert decide(42, "something else", 75).reason == "bad_payload"


def test_a_decision_is_answered_as_a_bot_api_method_call():
    declined = payments.Decision(False, "The price of this plan has changed.", "wrong_amount")

    assert declined.answer("q9") == {
        "method": "answerPreCheckoutQuery",
        "pre_checkout_query_id": "q9",
        "ok": False,
        "error_message": "The price of this plan has changed.",
    }
