"""Codes and plan names that only look right, and text too long to echo, at the Mini App and the bot."""
from __future__ import annotations

import pytest

from app import users
from app.models import Grant, Trial
from simulate import telegram_updates as updates
from tests.support.stripe import token_for
from tests.support.telegram import post_update, wait_until_done
from tests.support.waiting import wait_for

# Each turns into ASCII under str.upper() or str.lower(): `ſ`→S, `ı`→I, `ﬀ`→FF, the Kelvin sign `K`→k.
CODE_LOOKALIKES = ["ſale", "ſALE", "ﬀ-SALE", "sale\u0131", "\u212aEY-SALE"]


def said_to(telegram_api, user_id: int) -> list[str]:
    return [c.params["text"] for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == str(user_id)]


@pytest.mark.parametrize("code", CODE_LOOKALIKES)
def test_a_code_that_only_looks_like_one_is_unknown(client, app, cli, code):
    for real in ("SALE", "FF-SALE", "SALEI", "KEY-SALE"):
        assert cli("promo", "create", real, "--entitlement", "premium", "--days", "3").exit_code == 0
    users.ensure_user(301)

    response = client.post("/api/redeem", json={"code": code}, headers=token_for(app, 301))

    assert response.status_code == 404 and response.get_json()["error"]["code"] == "unknown"
    assert Grant.select().count() == 0


def test_a_plan_name_that_only_looks_like_one_starts_no_trial(client, app):
    users.ensure_user(302)

    response = client.post("/api/trial", json={"plan": "premium_wee\u212a"}, headers=token_for(app, 302))

    assert response.status_code == 400 and response.get_json()["error"]["code"] == "unknown_plan"
    assert Trial.select().count() == 0 and Grant.select().count() == 0


@pytest.mark.parametrize("text", ["/gift " + "x" * 4090, "/trial " + "\u2028" * 4000, "/gift premium_wee\u212a",
                                  "/redeem " + "A" * 4000, "/start gift_" + "g" * 4000, "/start promo_" + "ſ" * 4000])
def test_the_bot_answers_odd_text_with_a_message_telegram_takes(client, worker, telegram_api, text):
    update = updates.command_update(303, text)
    post_update(client, update)

    wait_until_done(f"update:{update['update_id']}")
    (said,) = said_to(telegram_api, 303)
    assert 0 < len(said.encode("utf-16-le")) // 2 <= 4096
    assert not telegram_api.calls_to("sendInvoice")
    assert Grant.select().count() == 0 and Trial.select().count() == 0
