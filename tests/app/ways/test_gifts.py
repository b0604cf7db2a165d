"""Gifts at the wire: /gift sends a gift invoice, its payment opens a link, the first other user who opens it holds the plan."""
from __future__ import annotations

import re

import pytest

from app.models import EntitlementTransition, Gift, Grant, User
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.support.metrics import metric
from tests.support.telegram import payment_update, post_update, wait_until_done
from tests.support.waiting import wait_for


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def said_to(telegram_api, user_id: int) -> list[str]:
    return [c.params["text"] for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == str(user_id)]


def buy_gift(client, telegram_api, plans, buyer: int, charge_id: str) -> str:
    """Pay a gift invoice for premium_week as `buyer`; the code from the link the bot sends back."""
    payload = payments.encode_payload("premium_week", buyer, gift=True)
    post_update(client, payment_update(buyer, plans.get("premium_week"), charge_id=charge_id, payload=payload))
    wait_until_done(charge_id)
    wait_for(lambda: any("start=gift_" in text for text in said_to(telegram_api, buyer)))
    (text,) = [t for t in said_to(telegram_api, buyer) if "start=gift_" in t]
    assert "https://t.me/entitle_test_bot?start=gift_" in text
    return re.search(r"start=gift_([A-Za-z0-9_-]+)", text)[1]


def open_link(client, user_id: int, code: str) -> None:
    post_update(client, updates.command_update(user_id, f"/start gift_{code}"))


def test_slash_gift_sends_a_gift_invoice(client, worker, telegram_api):
    post_update(client, updates.command_update(90, "/gift premium_week"))
    wait_for(lambda: telegram_api.calls_to("sendInvoice"))
    (invoice,) = telegram_api.calls_to("sendInvoice")
    decoded = payments.decode_payload(invoice.params["payload"])
    assert decoded.gift and decoded.user_id == 90 and decoded.plan == "premium_week"
    assert invoice.params["title"].startswith("Gift:")

    post_update(client, updates.command_update(90, "/gift premium_month"))
    wait_for(lambda: any("cannot be a gift" in t for t in said_to(telegram_api, 90)))


def test_a_gift_is_redeemed_once_by_another_user_never_by_its_buyer(client, worker, plans, telegram_api):
    before = metric(client, "gifts_total", state="redeemed")
    code = buy_gift(client, telegram_api, plans, 90, "stx-gift-1")
    assert Grant.select().where(Grant.user == User.get(User.telegram_id == 90).id).count() == 0  # the buyer holds nothing

    open_link(client, 90, code)
    wait_for(lambda: any("your own gift" in t for t in said_to(telegram_api, 90)))
    open_link(client, 91, code)
    wait_for(lambda: any("A gift for you" in t for t in said_to(telegram_api, 91)))
    open_link(client, 92, code)
    wait_for(lambda: any("already been redeemed" in t for t in said_to(telegram_api, 92)))

    (grant,) = list(Grant.select().where(Grant.source == "gift"))
    assert grant.user.telegram_id == 91 and grant.plan == "premium_week"
    assert Gift.get(Gift.code == code).state == "redeemed"
    wait_for(lambda: any("was redeemed by" in t for t in said_to(telegram_api, 90)))
    assert metric(client, "gifts_total", state="redeemed") == before + 1


def test_a_refund_before_redemption_voids_the_link(client, worker, plans, telegram_api):
    code = buy_gift(client, telegram_api, plans, 93, "stx-gift-2")

    post_update(client, updates.refunded_payment_update(93, "g1", plans.get("premium_week").stars, "stx-gift-2"))
    wait_until_done("refund:stx-gift-2")
    open_link(client, 94, code)

    wait_for(lambda: any("was refunded" in t for t in said_to(telegram_api, 94)))
    assert Gift.get(Gift.code == code).state == "voided"
    assert Grant.select().where(Grant.source == "gift").count() == 0


def test_a_refund_after_redemption_revokes_the_recipients_grant(client, worker, plans, telegram_api):
    code = buy_gift(client, telegram_api, plans, 95, "stx-gift-3")
    open_link(client, 96, code)
    wait_for(lambda: Grant.select().where(Grant.source == "gift").exists())

    post_update(client, updates.refunded_payment_update(95, "g1", plans.get("premium_week").stars, "stx-gift-3"))
    wait_until_done("refund:stx-gift-3")

    grant = Grant.get(Grant.source == "gift")
    assert grant.revoked_at is not None
    ended = EntitlementTransition.get((EntitlementTransition.user == grant.user_id) & (EntitlementTransition.kind == "ended"))
    assert ended.reason == "refunded"


@pytest.mark.parametrize("code", ["x", "' OR 1=1 --", "A" * 60, "ÿÿÿÿÿÿÿÿÿÿ"])
def test_a_guessed_or_malformed_gift_link_grants_nothing(client, worker, telegram_api, code):
    open_link(client, 97, code)
    wait_for(lambda: any("not valid" in t for t in said_to(telegram_api, 97)))
    assert Grant.select().count() == 0


def test_a_gift_bought_by_card_is_redeemed_once_by_another_user(client, app, worker, telegram_api, stripe_api):
    from app import users
    from tests.support.stripe import token_for

    users.ensure_user(98)
    created = client.post("/api/checkout", json={"plan": "premium_week", "gift": True}, headers=token_for(app, 98))
    assert created.status_code == 200, created.get_json()
    session = stripe_api.set_checkout_session(created.get_json()["id"], payment_status="paid")
    page = client.get(f"/checkout/success?session_id={session['id']}")
    assert "Gift paid" in page.get_data(as_text=True)

    wait_for(lambda: any("start=gift_" in text for text in said_to(telegram_api, 98)))
    code = re.search(r"start=gift_([A-Za-z0-9_-]+)", [t for t in said_to(telegram_api, 98) if "start=gift_" in t][0])[1]
    assert Grant.select().count() == 0  # the buyer holds nothing
    open_link(client, 99, code)
    wait_for(lambda: any("A gift for you" in t for t in said_to(telegram_api, 99)))
    (grant,) = list(Grant.select().where(Grant.source == "gift"))
    assert grant.user.telegram_id == 99

    refused = client.post("/api/checkout", json={"plan": "premium_month", "gift": True}, headers=token_for(app, 98))
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "not_giftable"
