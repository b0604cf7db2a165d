"""The bot's Bot API budget at the wire: bulk chat work waits its turn, holding no thread; a reply to a person never waits."""
from __future__ import annotations

import pytest

from simulate import telegram_updates as updates
from tests.support.access import access_events
from tests.support.telegram import payment_update, post_update
from tests.support.waiting import wait_for


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


@pytest.fixture
def env(env):
    """A budget of 2 Bot API calls a second, so a few chat events fill it."""
    return {**env, "BOT_API_RATE": "2"}


def test_bulk_work_waits_for_the_bots_budget_and_a_reply_to_a_person_does_not(client, worker, plans, telegram_api):
    # Given ten payers whose invites (two calls each) fill a budget of 2 calls a second for several seconds
    for user in range(10):
        post_update(client, payment_update(7300 + user, plans.get("premium_week"), charge_id=f"budget-{user}"))
    wait_for(lambda: telegram_api.calls_to("createChatInviteLink"), timeout=30, message="the first invite")

    # When someone sends /start meanwhile
    post_update(client, updates.command_update(7400, "/start"))

    # Then the reply goes out while invites still wait their turn, and no second ever carries more than the budget
    wait_for(lambda: [c for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == "7400"], timeout=30, message="the reply")
    assert len(telegram_api.calls_to("createChatInviteLink")) < 20
    invites = wait_for(lambda: len(access_events("chat_invite")) == 20 and all(r.status == "processed" for r in access_events("chat_invite")),
                       timeout=120, message="every invite sent")
    assert invites
    bulk = sorted(c.at for c in telegram_api.calls
                  if c.method == "createChatInviteLink" or (c.method == "sendMessage" and "ask to join" in c.params["text"]))
    assert len(bulk) == 40
    # At the budget's pace: 2 calls a second, taken two at a time (the thank-yous and the reply are counted in it too).
    assert bulk[-1] - bulk[0] >= (len(bulk) - 2) / 2 - 1
