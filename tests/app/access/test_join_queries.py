"""Join requests a chat hands to the bot (`query_id`), at the wire: decided in the webhook's own request, the paywall, its timeout.

Updates are posted to the webhook; the Telegram stand-in records what the bot answered and when;
a real worker runs what follows a payment.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from app.access import expiry
from app.clock import utcnow
from app.db import transaction
from app.models import Event, JoinQuery
from app.telegram.initdata import sign_init_data
from tests.support.access import CHAT_A, CHAT_B, access_env, join_request_update, wait_all_done
from tests.support.metrics import metric
from tests.support.stripe import buy, stripe_env
from tests.support.telegram import TOKEN, payment_update, post_update, wait_until_done
from tests.support.waiting import wait_for

OPEN_CHAT = -1001000000099  # listed by no entitlement
QUEUE_CHAT = -1001000000033  # its entitlement leaves unpaid requests to the admins
EXTRA = f"""
[entitlements.club]
title = "Club"
chats = [{QUEUE_CHAT}]
unpaid_join = "queue"

[plans.club_week]
title = "Club — 7 days"
entitlement = "club"
stars = 50
days = 7
"""


@pytest.fixture
def env(env, telegram_api, stripe_api, tmp_path):
    access_env(env, telegram_api, tmp_path)
    env.update(stripe_env(stripe_api))
    with open(env["PLANS_FILE"], "a") as plans:
        plans.write(EXTRA)
    env["JOIN_PAYWALL_SECONDS"] = "60"
    return env


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def query_update(update_id: int, chat: int, user_id: int, query_id: str) -> dict:
    update = join_request_update(update_id, chat, user_id)
    update["chat_join_request"]["query_id"] = query_id
    return update


def answers(telegram_api, query_id: str) -> list[str]:
    return [c.params["result"] for c in telegram_api.calls_to("answerChatJoinRequestQuery")
            if c.params["chat_join_request_query_id"] == query_id]


def paywall_url(telegram_api, query_id: str) -> str:
    (call,) = [c for c in telegram_api.calls_to("sendChatJoinRequestWebApp") if c.params["chat_join_request_query_id"] == query_id]
    return call.params["web_app_url"]


def sign_in(client, user_id: int) -> dict:
    """Sign in to the Mini App as `user_id` with initData signed by the bot's token, as Telegram would."""
    init_data = sign_init_data(TOKEN, user={"id": user_id, "first_name": f"User{user_id}"})
    response = client.post("/api/session", json={"init_data": init_data})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def join_token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["join"][0]


def pay(client, user_id: int, plan, charge_id: str) -> None:
    post_update(client, payment_update(user_id, plan, charge_id=charge_id))
    wait_until_done(charge_id)


def test_a_holders_query_is_approved_within_the_webhooks_own_request(client, worker, plans, telegram_api):
    pay(client, 42, plans.get("premium_week"), "stx-door-1")
    before = metric(client, "chat_access_total", action="query_approved", result="ok")

    response = post_update(client, query_update(1, CHAT_A, 42, "q-holder"))

    # Answered before the webhook answered: the stand-in has the call already.
    assert response.status_code == 200
    assert response.get_json()["decision"] == "approved"
    assert answers(telegram_api, "q-holder") == ["approve"]
    assert telegram_api.calls_to("sendChatJoinRequestWebApp") == []
    assert metric(client, "chat_access_total", action="query_approved", result="ok") == before + 1


def test_a_chat_no_entitlement_lists_is_left_to_its_admins(client, telegram_api):
    response = post_update(client, query_update(2, OPEN_CHAT, 42, "q-open"))

    assert response.get_json()["decision"] == "queued"
    assert answers(telegram_api, "q-open") == ["queue"]


def test_every_delivery_of_a_query_gets_one_decision(client, telegram_api):
    for _ in range(3):
        response = post_update(client, query_update(3, CHAT_A, 777, "q-thrice"))
        assert response.status_code == 200

    assert len(telegram_api.calls_to("sendChatJoinRequestWebApp")) == 1
    assert JoinQuery.select().where(JoinQuery.query_id == "q-thrice").count() == 1
    assert Event.select().where(Event.external_id == "joinq:q-thrice").count() == 1
    assert response.get_json()["status"] == "duplicate"


def test_a_stranger_gets_the_paywall_signs_in_pays_in_stars_and_is_approved_once(client, worker, plans, telegram_api):
    response = post_update(client, query_update(4, CHAT_A, 777, "q-stranger"))
    assert response.get_json()["decision"] == "paywall"
    assert answers(telegram_api, "q-stranger") == []
    url = paywall_url(telegram_api, "q-stranger")
    assert url.startswith("https://entitle.example/app?join=")

    page = client.get("/" + url.split("://", 1)[1].split("/", 1)[1])
    assert page.status_code == 200
    headers = sign_in(client, 777)
    paywall = client.get(f"/api/paywall/{join_token(url)}", headers=headers)
    assert paywall.status_code == 200
    shown = paywall.get_json()
    assert shown["chat"] == {"id": CHAT_A, "title": "Premium chat"}
    assert shown["state"] == "paywall"
    assert {plan["entitlement"] for plan in shown["plans"]} == {"premium"}

    pay(client, 777, plans.get("premium_week"), "stx-paywall-1")
    wait_all_done("chat_invite", 2)

    assert answers(telegram_api, "q-stranger") == ["approve"]
    assert JoinQuery.get(JoinQuery.query_id == "q-stranger").state == "paid"
    # The other chat of the entitlement still gets today's invite link; the paywall's chat none.
    links = telegram_api.calls_to("createChatInviteLink")
    assert [int(c.params["chat_id"]) for c in links] == [CHAT_B]
    assert metric(client, "chat_access_total", action="paywall_paid", result="ok") >= 1
    assert metric(client, "chat_access_total", action="paywall_shown", result="ok") >= 1


def test_a_stranger_who_pays_by_card_through_the_success_page_is_approved_once(client, app, worker, telegram_api, stripe_api):
    post_update(client, query_update(5, CHAT_A, 778, "q-card"))
    sign_in(client, 778)

    buy(client, app, stripe_api, 778, "premium_week")

    wait_for(lambda: answers(telegram_api, "q-card") == ["approve"], timeout=30)
    wait_all_done("chat_invite", 2)
    assert answers(telegram_api, "q-card") == ["approve"]
    assert JoinQuery.get(JoinQuery.query_id == "q-card").state == "paid"


def test_a_launch_link_moved_to_another_chat_or_user_is_refused(client, telegram_api):
    post_update(client, query_update(6, CHAT_A, 777, "q-moved"))
    token = join_token(paywall_url(telegram_api, "q-moved"))

    other = client.get(f"/api/paywall/{token}", headers=sign_in(client, 999))
    assert other.status_code == 403
    assert other.get_json()["error"]["code"] == "paywall_not_yours"

    mine = sign_in(client, 777)
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    assert client.get(f"/api/paywall/{forged}", headers=mine).status_code == 404
    # A token for another chat can only come from the service's own key: re-signing without it fails.
    payload, _, signature = token.partition(".")
    import base64

    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["c"] = CHAT_B
    moved = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=") + "." + signature
    assert client.get(f"/api/paywall/{moved}", headers=mine).status_code == 404
    assert client.get(f"/api/paywall/{token}").status_code == 401


@pytest.mark.parametrize("chat, expected", [(CHAT_A, "decline"), (QUEUE_CHAT, "queue")])
def test_an_unpaid_paywall_is_answered_as_its_entitlement_says_after_the_timeout(client, worker, telegram_api, runtime, chat, expected):
    post_update(client, query_update(7, chat, 777, f"q-unpaid-{expected}"))
    assert answers(telegram_api, f"q-unpaid-{expected}") == []

    # Not yet: the paywall waits its time.
    expiry.run_once(utcnow(), hand_off=runtime.enqueue)
    time.sleep(0.3)
    assert answers(telegram_api, f"q-unpaid-{expected}") == []

    expiry.run_once(utcnow() + timedelta(seconds=61), hand_off=runtime.enqueue)
    wait_for(lambda: answers(telegram_api, f"q-unpaid-{expected}") == [expected], timeout=20)
    row = JoinQuery.get(JoinQuery.query_id == f"q-unpaid-{expected}")
    assert (row.state, row.answer) == ("unpaid", expected)
    # Once: a second pass finds nothing to answer.
    expiry.run_once(utcnow() + timedelta(seconds=120), hand_off=runtime.enqueue)
    time.sleep(0.5)
    assert answers(telegram_api, f"q-unpaid-{expected}") == [expected]


def test_a_query_answered_too_late_falls_back_to_an_invite_link(client, worker, plans, telegram_api):
    post_update(client, query_update(8, CHAT_A, 779, "q-late"))
    telegram_api.fail("answerChatJoinRequestQuery", 400, "Bad Request: QUERY_ID_INVALID")

    pay(client, 779, plans.get("premium_week"), "stx-late-1")
    wait_all_done("chat_invite", 2)

    links = telegram_api.calls_to("createChatInviteLink")
    assert sorted(int(c.params["chat_id"]) for c in links) == sorted([CHAT_A, CHAT_B])
    row = JoinQuery.get(JoinQuery.query_id == "q-late")
    assert row.state == "invited" and "QUERY_ID_INVALID" in row.note


def test_every_decision_is_in_customer_show(client, worker, plans, telegram_api, cli):
    post_update(client, query_update(9, CHAT_A, 780, "q-shown"))
    pay(client, 780, plans.get("premium_week"), "stx-shown-1")
    wait_for(lambda: JoinQuery.get(JoinQuery.query_id == "q-shown").state == "paid", timeout=30)

    result = cli("customer", "show", "780", "--json")
    assert result.exit_code == 0, result.output
    lines = [line for line in json.loads(result.output)["timeline"] if line["kind"] == "chat"]
    assert [line["detail"]["state"] for line in lines if "state" in line["detail"]] == ["paid"]
    assert any("approved after the payment" in line["summary"] for line in lines)


def test_access_audit_lists_the_requests_held_at_the_paywall(client, telegram_api, cli):
    post_update(client, query_update(10, CHAT_A, 781, "q-held"))

    result = cli("access", "audit", "--json")

    assert result.exit_code == 0, result.output
    held = [row for row in json.loads(result.output) if row["verdict"] == "held"]
    assert [(row["user"], row["chat"], row["status"]) for row in held] == [(781, CHAT_A, "join request at the paywall")]


def test_a_malformed_query_id_is_refused_at_the_door(client, telegram_api):
    update = query_update(11, CHAT_A, 42, "")

    response = post_update(client, update)

    assert response.status_code == 400
    assert "chat_join_request.query_id" in response.get_json()["error"]["message"]
    assert JoinQuery.select().count() == 0 and telegram_api.calls == []


def test_a_query_is_answered_queue_in_time_when_the_database_is_slow_and_a_worker_approves_it_later(
        client, worker, plans, telegram_api):
    from tests.conftest import DATABASE_URL

    if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
        pytest.skip("PostgreSQL only: the door's read is bounded by statement_timeout, which SQLite does not have")
    import psycopg2

    pay(client, 42, plans.get("premium_week"), "stx-slow-1")
    # Another connection holds the table the decision reads, as a long migration or a stuck transaction would.
    blocker = psycopg2.connect(DATABASE_URL)
    try:
        with blocker.cursor() as cur:
            # Should the door wait for it, PostgreSQL ends this session after 12 s, and the test fails instead of hanging.
            cur.execute("SET idle_in_transaction_session_timeout = '12s'")
            cur.execute('LOCK TABLE "grant" IN ACCESS EXCLUSIVE MODE')
        began = time.monotonic()
        response = post_update(client, query_update(30, CHAT_A, 42, "q-slow"))
        took = time.monotonic() - began

        assert response.status_code == 200
        assert response.get_json()["decision"] == "queued"
        assert took < 8, f"the webhook answered after {took:.1f} s; Telegram waits 10 s"
        assert answers(telegram_api, "q-slow") == ["queue"]
        assert telegram_api.calls_to("approveChatJoinRequest") == []
    finally:
        if not blocker.closed:
            try:
                blocker.rollback()
            finally:
                blocker.close()

    wait_for(lambda: [(c.params["chat_id"], c.params["user_id"]) for c in telegram_api.calls_to("approveChatJoinRequest")]
             == [(str(CHAT_A), "42")], timeout=60)
    wait_until_done("joinq:q-slow")
    assert answers(telegram_api, "q-slow") == ["queue"]
    assert JoinQuery.select().where(JoinQuery.query_id == "q-slow").count() == 0
