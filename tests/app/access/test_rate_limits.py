"""Bot API rate limits at the wire: a 429 defers its chat event instead of holding a worker thread, and the event decides again when it runs."""
from __future__ import annotations

import pytest

from app.models import Event, Grant
from simulate import telegram_updates as updates
from tests.support.access import CHAT_A, access_events, join_request_update
from tests.support.telegram import payment_update, post_update, wait_until_done
from tests.support.waiting import wait_for


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def test_a_429_storm_on_chat_methods_never_holds_up_a_payment(client, worker, plans, telegram_api):
    # Given chat invites piling up behind a Bot API that answers every one with 429 retry_after=30
    telegram_api.fail("createChatInviteLink", 429, "Too Many Requests: retry after 30", retry_after=30)
    for user in range(20):
        post_update(client, payment_update(7000 + user, plans.get("premium_week"), charge_id=f"storm-{user}"))
    wait_for(lambda: len([c for c in telegram_api.calls_to("createChatInviteLink")]) >= 8, timeout=60, message="invites refused")

    # When a payment for a plan with no chats arrives
    post_update(client, payment_update(7100, plans.get("supporter_lifetime"), charge_id="storm-supporter"))

    # Then it is granted while the invites still wait for their retry_after (both worker threads are free)
    wait_until_done("storm-supporter")
    assert Grant.select().where(Grant.reference == "storm-supporter").count() == 1
    invites = access_events("chat_invite")
    assert invites and all(row.status == "pending" for row in invites)
    assert all(row.attempts == 0 for row in invites if row.started_at is None), "a deferral is not a failed attempt"
    assert any("deferred" in [log.action for log in row.history] for row in invites)


def test_a_join_request_deferred_by_a_429_is_decided_again_after_a_refund(client, worker, plans, telegram_api):
    week = plans.get("premium_week")
    post_update(client, payment_update(7200, week, charge_id="join-race"))
    wait_until_done("join-race")

    # Given an approval the Bot API refuses with 429 retry_after=8
    telegram_api.fail("approveChatJoinRequest", 429, "Too Many Requests: retry after 8", times=1, retry_after=8)
    post_update(client, join_request_update(50, CHAT_A, 7200))
    wait_for(lambda: telegram_api.calls_to("approveChatJoinRequest"), timeout=30, message="the refused approval")

    # When the payment is refunded meanwhile and its removal runs
    post_update(client, updates.refunded_payment_update(7200, "e1:x:1:00000000", week.stars, "join-race"))
    wait_for(lambda: [c for c in telegram_api.calls_to("unbanChatMember") if c.params["chat_id"] == str(CHAT_A)],
             timeout=30, message="the removal")

    # Then the request is declined when it runs again: no one who holds nothing is let in
    wait_for(lambda: telegram_api.calls_to("declineChatJoinRequest"), timeout=30, message="the decline")
    approvals = telegram_api.calls_to("approveChatJoinRequest")
    assert len(approvals) == 1, "only the refused approval was ever sent"
    (row,) = [e for e in Event.select().where(Event.type == "chat_join_request")]
    wait_for(lambda: Event.get_by_id(row.id).status == "processed", message="the join request handled")

