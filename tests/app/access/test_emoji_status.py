"""An entitlement's emoji status, at the wire: set with the grant's end, moved by a renewal, removed by a refund."""
from __future__ import annotations

import time

import pytest

from app.models import EntitlementState, User
from simulate import telegram_updates as updates
from tests.support.access import access_env, wait_all_done
from tests.support.stripe import token_for
from tests.support.telegram import payment_update, post_update, wait_until_done
from tests.support.waiting import wait_for

EMOJI = "5368324170671202286"


@pytest.fixture
def env(env, telegram_api, tmp_path):
    access_env(env, telegram_api, tmp_path)
    plans = open(env["PLANS_FILE"]).read().replace('title = "Premium"\n', f'title = "Premium"\nemoji_status = "{EMOJI}"\n', 1)
    open(env["PLANS_FILE"], "w").write(plans)
    return env


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def statuses(telegram_api, user_id: int) -> list[dict]:
    return [c.params for c in telegram_api.calls_to("setUserEmojiStatus") if c.params["user_id"] == str(user_id)]


def end_of(user_id: int) -> int:
    state = EntitlementState.get((EntitlementState.user == User.get(User.telegram_id == user_id).id) & (EntitlementState.entitlement == "premium"))
    return int(state.ends_at.timestamp())


def test_the_status_follows_the_grant_set_moved_and_cleared(client, app, worker, plans, telegram_api):
    week = plans.get("premium_week")
    post_update(client, payment_update(42, week, charge_id="stx-emoji-1"))
    wait_until_done("stx-emoji-1")
    wait_all_done("emoji_status", 1)
    assert statuses(telegram_api, 42) == []  # not allowed yet: never set

    asked = client.get("/api/emoji-status", headers=token_for(app, 42))
    assert asked.get_json() == {"allowed": None, "perks": ["premium"]}  # the Mini App asks
    allowed = client.post("/api/emoji-status", json={"allowed": True}, headers=token_for(app, 42))
    assert allowed.status_code == 200 and allowed.get_json()["set"] == ["premium"]
    (first,) = statuses(telegram_api, 42)
    assert first["emoji_status_custom_emoji_id"] == EMOJI
    assert int(first["emoji_status_expiration_date"]) == end_of(42)

    post_update(client, payment_update(42, week, charge_id="stx-emoji-2"))
    wait_until_done("stx-emoji-2")
    wait_for(lambda: len(statuses(telegram_api, 42)) == 2)
    moved = statuses(telegram_api, 42)[1]
    assert int(moved["emoji_status_expiration_date"]) == end_of(42) > int(first["emoji_status_expiration_date"])

    for charge in ("stx-emoji-1", "stx-emoji-2"):
        post_update(client, updates.refunded_payment_update(42, "e1:x:1:00000000", week.stars, charge))
        wait_until_done(f"refund:{charge}")
    wait_for(lambda: any("emoji_status_custom_emoji_id" not in p for p in statuses(telegram_api, 42)))
    time.sleep(0.3)
    assert "emoji_status_custom_emoji_id" not in statuses(telegram_api, 42)[-1]


def test_a_declined_permission_is_kept_and_nothing_is_set(client, app, worker, plans, telegram_api):
    from app import users

    users.ensure_user(43)
    refused = client.post("/api/emoji-status", json={"allowed": False}, headers=token_for(app, 43))
    assert refused.status_code == 200 and refused.get_json() == {"allowed": False, "set": []}
    assert client.get("/api/emoji-status", headers=token_for(app, 43)).get_json()["allowed"] is False  # never asked again
    post_update(client, payment_update(43, plans.get("premium_week"), charge_id="stx-emoji-3"))
    wait_until_done("stx-emoji-3")
    wait_all_done("emoji_status", 1)
    assert statuses(telegram_api, 43) == []


@pytest.mark.parametrize("body", [{}, {"allowed": "yes"}, {"allowed": 1}])
def test_a_bad_answer_is_400(client, app, body):
    from app import users

    users.ensure_user(44)
    response = client.post("/api/emoji-status", json=body, headers=token_for(app, 44))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
