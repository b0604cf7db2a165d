"""Free trials at the wire: the Mini App's POST /api/trial, the bot's /trial, and a card subscription's Checkout Session."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from app import entitlements, users
from app.models import Grant, Trial
from tests.support.metrics import metric
from tests.support.stripe import token_for
from tests.support.telegram import payment_update, post_update, wait_until_done


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def test_a_trial_is_started_once_and_refused_the_second_time(client, app):
    users.ensure_user(42)
    before = metric(client, "trials_started_total")

    first = client.post("/api/trial", json={"plan": "premium_week"}, headers=token_for(app, 42))
    second = client.post("/api/trial", json={"plan": "premium_week"}, headers=token_for(app, 42))

    assert first.status_code == 200, first.get_json()
    assert first.get_json()["source"] == "trial" and first.get_json()["entitlement"] == "premium"
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "trial_used"
    assert "already had your free trial" in second.get_json()["error"]["message"]
    assert Grant.select().where(Grant.source == "trial").count() == 1
    assert metric(client, "trials_started_total") == before + 1


def test_a_user_who_paid_before_gets_no_trial_whichever_provider(client, app):
    stars = users.ensure_user(43)
    entitlements.grant(stars, "premium", source="telegram", reference="stx-before", days=7, plan="premium_week")
    card = users.ensure_user(44)
    entitlements.grant(card, "premium", source="stripe", reference="cs_before", days=7, plan="premium_week")

    for user_id in (43, 44):
        response = client.post("/api/trial", json={"plan": "premium_week"}, headers=token_for(app, user_id))
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "held_before"
    assert Trial.select().count() == 0


def test_twenty_concurrent_trials_for_one_user_grant_one(client, app, live_server):
    import requests

    users.ensure_user(45)
    headers = token_for(app, 45)

    def start(_):
        return requests.post(f"{live_server}/api/trial", json={"plan": "premium_week"}, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(start, range(20)))

    assert sorted(statuses) == [200] + [409] * 19
    assert Grant.select().where((Grant.source == "trial")).count() == 1
    assert Trial.select().count() == 1


def test_a_purchase_during_a_trial_starts_when_the_trial_ends(client, app, worker, plans):
    users.ensure_user(46)
    trial = client.post("/api/trial", json={"plan": "premium_week"}, headers=token_for(app, 46)).get_json()

    post_update(client, payment_update(46, plans.get("premium_week"), charge_id="stx-after-trial"))
    wait_until_done("stx-after-trial")

    paid = Grant.get(Grant.reference == "stx-after-trial")
    assert paid.starts_at.isoformat()[:19] == trial["ends_at"][:19]


@pytest.mark.parametrize("body, code", [({"plan": "gold"}, "unknown_plan"), ({"plan": "supporter_lifetime"}, "no_trial"),
                                         ({"plan": 5}, "unknown_plan")])
def test_a_plan_without_a_trial_is_a_clear_400(client, app, body, code):
    users.ensure_user(47)
    response = client.post("/api/trial", json=body, headers=token_for(app, 47))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert Trial.select().count() == 0


def test_the_bot_starts_a_trial_with_slash_trial_once(client, worker, telegram_api):
    from simulate import telegram_updates as updates

    for n in range(2):
        post_update(client, updates.command_update(48, "/trial premium_week"))
    from tests.support.waiting import wait_for

    wait_for(lambda: len([c for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == "48"]) == 2)
    said = [c.params["text"] for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == "48"]
    assert sum("free trial of" in text and "has started" in text for text in said) == 1
    assert sum("already had your free trial" in text for text in said) == 1


def test_a_card_subscriptions_checkout_carries_the_trial_once(client, app, stripe_api):
    users.ensure_user(49)
    headers = token_for(app, 49)

    first = client.post("/api/checkout", json={"plan": "premium_month"}, headers=headers)
    second = client.post("/api/checkout", json={"plan": "premium_month"}, headers=headers)

    assert first.status_code == 200 and second.status_code == 200
    created = [call.params for call in stripe_api.calls_to("POST", "/v1/checkout/sessions")]
    assert len(created) == 2
    assert str(created[0]["subscription_data"]["trial_period_days"]) == "7"
    assert "trial_period_days" not in created[1]["subscription_data"]
    assert str(created[0]["allow_promotion_codes"]).lower() == "true"
    assert Trial.get(Trial.user == users.find_user(49)).via == "stripe"
    # The trial by card counts: no second trial in Stars either.
    again = client.post("/api/trial", json={"plan": "premium_week"}, headers=headers)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "trial_used"
