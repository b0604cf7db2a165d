"""Chat access, at the wire: a payment sends invite links, join requests are decided, refunds and expiries remove.

Given updates posted to the webhook and a real worker, the Telegram stand-in's recorded calls are
what a payer, a stranger and the chat's administrators would see.
"""
from __future__ import annotations

import time

import pytest

from app.models import EntitlementTransition, Event
from simulate import telegram_updates as updates
from tests.support.access import CHAT_A, CHAT_B, access_events, join_request_update, wait_all_done
from tests.support.metrics import metric
from tests.support.telegram import payment_update, post_update, wait_until_done
from tests.support.waiting import wait_for


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def pay(client, user_id: int, plan, charge_id: str) -> None:
    post_update(client, payment_update(user_id, plan, charge_id=charge_id))
    wait_until_done(charge_id)


def refund(client, user_id: int, plan, charge_id: str) -> None:
    update = updates.refunded_payment_update(user_id, "e1:x:1:00000000", plan.stars, charge_id)
    post_update(client, update)


def removals(telegram_api, user_id: int, method: str) -> list:
    return [c for c in telegram_api.calls_to(method) if c.params["user_id"] == str(user_id)]


def test_a_stars_payment_sends_an_invite_per_chat_and_only_the_payers_join_request_is_approved(client, worker, plans, telegram_api):
    before = metric(client, "entitlement_transitions_total", kind="started")
    pay(client, 42, plans.get("premium_week"), "stx-chats-1")

    wait_all_done("chat_invite", 2)
    links = telegram_api.calls_to("createChatInviteLink")
    assert sorted(int(c.params["chat_id"]) for c in links) == sorted([CHAT_A, CHAT_B])
    assert all(c.flag("creates_join_request") and "42" in c.params["name"] for c in links)
    sent = [c.params["text"] for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == "42"]
    assert sum("https://t.me/+" in text for text in sent) == 2
    assert metric(client, "entitlement_transitions_total", kind="started") == before + 1

    post_update(client, join_request_update(1, CHAT_A, 42))
    post_update(client, join_request_update(2, CHAT_A, 777))
    wait_for(lambda: telegram_api.calls_to("approveChatJoinRequest") and telegram_api.calls_to("declineChatJoinRequest"))
    assert [c.params["user_id"] for c in telegram_api.calls_to("approveChatJoinRequest")] == ["42"]
    assert [c.params["user_id"] for c in telegram_api.calls_to("declineChatJoinRequest")] == ["777"]
    wait_for(lambda: any(c.params["chat_id"] == "777" for c in telegram_api.calls_to("sendMessage")))
    stranger = [c.params["text"] for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == "777"]
    assert "/buy" in stranger[0]
    assert metric(client, "chat_access_total", action="approve", result="ok") >= 1
    assert metric(client, "chat_access_total", action="decline", result="ok") >= 1


def test_a_refund_delivered_three_times_removes_the_payer_once_from_both_chats_and_never_an_admin(client, worker, plans, telegram_api):
    week = plans.get("premium_week")
    pay(client, 42, week, "stx-refund-1")
    pay(client, 43, week, "stx-refund-admin")
    for chat in (CHAT_A, CHAT_B):
        telegram_api.set_member(chat, 42, "member")
        telegram_api.set_member(chat, 43, "administrator")

    for _ in range(3):
        refund(client, 42, week, "stx-refund-1")
    refund(client, 43, week, "stx-refund-admin")
    wait_all_done("chat_remove", 4)
    time.sleep(0.5)

    assert sorted(int(c.params["chat_id"]) for c in removals(telegram_api, 42, "banChatMember")) == sorted([CHAT_A, CHAT_B])
    unbans = removals(telegram_api, 42, "unbanChatMember")
    assert len(unbans) == 2 and all(c.flag("only_if_banned") for c in unbans)
    assert telegram_api.member_status(CHAT_A, 42) == "left"  # can come back after paying again
    assert removals(telegram_api, 43, "banChatMember") == []
    assert telegram_api.member_status(CHAT_A, 43) == "administrator"
    ended = EntitlementTransition.select().where((EntitlementTransition.kind == "ended") & (EntitlementTransition.reason == "refunded"))
    assert ended.count() == 2
    assert metric(client, "chat_access_total", action="remove", result="admin") >= 2


def test_a_429_is_retried_after_its_retry_after_and_then_succeeds(client, worker, plans, telegram_api):
    telegram_api.fail("createChatInviteLink", 429, "Too Many Requests: retry after 2", times=1, retry_after=2)

    pay(client, 42, plans.get("premium_week"), "stx-429")

    rows = wait_all_done("chat_invite", 2)
    assert [r.status for r in rows] == ["processed", "processed"]
    calls = telegram_api.calls_to("createChatInviteLink")
    assert len(calls) == 3
    limited = [c for c in calls if c.params["chat_id"] == calls[0].params["chat_id"]]
    assert len(limited) == 2 and 1.9 <= limited[1].at - limited[0].at < 5


def test_a_bot_that_is_not_an_admin_fails_the_row_with_what_to_fix(client, worker, plans, telegram_api):
    telegram_api.fail("createChatInviteLink", 400, "Bad Request: not enough rights to manage chat invite link")

    pay(client, 42, plans.get("premium_week"), "stx-no-rights")

    rows = wait_all_done("chat_invite", 2)
    assert {r.status for r in rows} == {"failed"}
    assert "add the bot to the chat as an administrator" in rows[0].error
    assert f"entitle events replay {rows[0].id}" in rows[0].error


def test_a_user_who_blocked_the_bot_is_still_removed(client, worker, plans, telegram_api):
    week = plans.get("premium_week")
    pay(client, 42, week, "stx-blocked")
    wait_all_done("chat_invite", 2)
    telegram_api.set_member(CHAT_A, 42, "member")
    telegram_api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")

    refund(client, 42, week, "stx-blocked")

    rows = wait_all_done("chat_remove", 2)
    assert {r.status for r in rows} == {"processed"}
    assert len(removals(telegram_api, 42, "banChatMember")) == 2


def test_paying_again_after_a_refund_sends_a_new_link(client, worker, plans, telegram_api):
    week = plans.get("premium_week")
    pay(client, 42, week, "stx-again-1")
    wait_all_done("chat_invite", 2)
    refund(client, 42, week, "stx-again-1")
    wait_all_done("chat_remove", 2)

    pay(client, 42, week, "stx-again-2")

    wait_all_done("chat_invite", 4)
    links = {c.params["chat_id"] for c in telegram_api.calls_to("createChatInviteLink")}
    assert len(telegram_api.calls_to("createChatInviteLink")) == 4 and len(links) == 2
    kinds = [t.kind for t in EntitlementTransition.select().order_by(EntitlementTransition.sequence)]
    assert kinds == ["started", "ended", "started"]


def test_a_join_request_for_a_chat_no_entitlement_lists_is_ignored(client, worker, telegram_api):
    response = post_update(client, join_request_update(5, -1009999, 42))

    assert response.status_code == 200
    wait_for(lambda: Event.get_or_none(Event.type == "chat_join_request") is not None
             and Event.get(Event.type == "chat_join_request").status == "ignored")
    assert telegram_api.calls_to("declineChatJoinRequest") == []


def test_a_join_request_with_a_bad_chat_is_refused_at_the_door(client):
    update = join_request_update(6, CHAT_A, 42)
    update["chat_join_request"]["chat"]["id"] = "not-a-number"

    response = post_update(client, update)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_update"
    assert "chat_join_request.chat.id" in response.get_json()["error"]["message"]


def test_refunding_one_of_two_stacked_payments_moves_the_end_and_removes_no_one(client, worker, plans, telegram_api):
    week = plans.get("premium_week")
    pay(client, 42, week, "stx-stack-1")
    pay(client, 42, week, "stx-stack-2")

    refund(client, 42, week, "stx-stack-2")
    wait_until_done("refund:stx-stack-2")

    kinds = [(t.kind, t.reason) for t in EntitlementTransition.select().order_by(EntitlementTransition.sequence)]
    assert kinds == [("started", None), ("extended", None), ("extended", None)]
    assert access_events("chat_remove") == []

