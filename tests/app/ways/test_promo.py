"""Promo codes at the wire: created with the CLI, redeemed in the Mini App (POST /api/redeem) and the bot, within their caps."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app import entitlements, users
from app.models import Grant, PromoCode, PromoRedemption
from simulate import telegram_updates as updates
from tests.support.metrics import metric
from tests.support.stripe import token_for
from tests.support.telegram import post_update
from tests.support.waiting import wait_for


def create(cli, *args: str):
    result = cli("promo", "create", *args)
    assert result.exit_code == 0, result.output
    return result


def redeem(client, app, user_id: int, code: str):
    users.ensure_user(user_id)
    return client.post("/api/redeem", json={"code": code}, headers=token_for(app, user_id))


def test_a_code_is_redeemed_case_blind_and_grants_its_days(client, app, cli):
    create(cli, "SPRING24", "--entitlement", "premium", "--days", "10")
    before = metric(client, "promo_redemptions_total", result="redeemed")

    response = redeem(client, app, 42, "spring24")

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["source"] == "promo" and response.get_json()["code"] == "SPRING24"
    grant = Grant.get(Grant.source == "promo")
    assert (grant.ends_at - grant.starts_at).days == 10
    assert metric(client, "promo_redemptions_total", result="redeemed") == before + 1
    shown = json.loads(cli("promo", "show", "spring24", "--json").output)
    assert shown["uses"] == 1 and [r["user"] for r in shown["redemptions"]] == [42]


@pytest.mark.parametrize("concurrency", [50])
def test_fifty_concurrent_redemptions_of_a_five_use_code_grant_exactly_five(app, cli, live_server, concurrency):
    create(cli, "FIVE", "--entitlement", "premium", "--days", "3", "--max-uses", "5")
    headers = []
    for n in range(concurrency):
        users.ensure_user(1000 + n)
        headers.append(token_for(app, 1000 + n))

    def attempt(n):
        response = requests.post(f"{live_server}/api/redeem", json={"code": "five"}, headers=headers[n], timeout=60)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(attempt, range(concurrency)))

    assert sorted(status for status, _ in answers) == [200] * 5 + [409] * 45
    refused = [body["error"] for status, body in answers if status == 409]
    assert {e["code"] for e in refused} == {"used_up"} and all("used up" in e["message"] for e in refused)
    assert Grant.select().where(Grant.source == "promo").count() == 5
    assert PromoRedemption.select().count() == 5 and PromoCode.get().uses == 5


def test_each_rule_refuses_as_it_says(client, app, cli):
    create(cli, "ONCE", "--entitlement", "premium", "--days", "3")
    create(cli, "OLD", "--entitlement", "premium", "--days", "3", "--expires", "2020-01-01")
    create(cli, "NEWBIES", "--entitlement", "premium", "--days", "3", "--new-users-only")
    create(cli, "GONE", "--entitlement", "premium", "--days", "3")
    assert cli("promo", "disable", "gone").exit_code == 0
    veteran = users.ensure_user(60)
    entitlements.grant(veteran, "premium", source="telegram", reference="stx-veteran", days=1)

    assert redeem(client, app, 61, "ONCE").status_code == 200
    cases = [
        (61, "ONCE", 409, "already_used", "already used"),
        (61, "OLD", 410, "expired", "expired"),
        (60, "NEWBIES", 403, "not_for_you", "new members only"),
        (61, "GONE", 410, "disabled", "no longer valid"),
        (61, "NOPE", 404, "unknown", "not valid"),
    ]
    for user_id, code, status, reason, words in cases:
        response = redeem(client, app, user_id, code)
        assert response.status_code == status, (code, response.get_json())
        assert response.get_json()["error"]["code"] == reason and words in response.get_json()["error"]["message"]
    assert Grant.select().where(Grant.source == "promo").count() == 1


def test_the_eleventh_wrong_code_in_an_hour_is_told_to_wait(client, app, cli):
    create(cli, "REAL", "--entitlement", "premium", "--days", "3")
    statuses = [redeem(client, app, 70, f"GUESS{n:02d}").status_code for n in range(10)]
    assert statuses == [404] * 10

    eleventh = redeem(client, app, 70, "REAL")

    assert eleventh.status_code == 429 and eleventh.get_json()["error"]["code"] == "too_many"
    assert int(eleventh.headers["Retry-After"]) > 0
    assert Grant.select().where(Grant.source == "promo").count() == 0
    assert redeem(client, app, 71, "REAL").status_code == 200  # another payer is not held back


@pytest.mark.parametrize("code", ["", "x" * 65, "' OR 1=1 --", "ÉTÉ2024", "\u0000abc"])
def test_a_malformed_code_is_a_4xx_and_changes_nothing(client, app, cli, code):
    create(cli, "SPRING24", "--entitlement", "premium", "--days", "3")
    response = redeem(client, app, 72, code)
    assert 400 <= response.status_code < 500
    assert Grant.select().where(Grant.source == "promo").count() == 0


def test_the_bot_redeems_by_command_and_by_deep_link(client, worker, cli, telegram_api):
    create(cli, "BOTCODE", "--entitlement", "premium", "--days", "5", "--per-user", "2")

    post_update(client, updates.command_update(80, "/redeem botcode"))
    post_update(client, updates.command_update(80, "/start promo_BOTCODE"))
    post_update(client, updates.command_update(80, "/redeem botcode"))

    said = lambda: [c.params["text"] for c in telegram_api.calls_to("sendMessage") if c.params["chat_id"] == "80"]  # noqa: E731
    wait_for(lambda: len(said()) == 3)
    assert sum("redeemed" in text for text in said()) == 2
    assert sum("already used" in text for text in said()) == 1


def test_promo_list_and_create_refusals(cli):
    create(cli, "LISTED", "--entitlement", "premium", "--days", "3", "--max-uses", "100")
    taken = cli("promo", "create", "listed", "--entitlement", "premium", "--days", "3")
    assert taken.exit_code == 1 and "exists already" in taken.output
    bad = cli("promo", "create", "a b", "--entitlement", "premium", "--days", "3")
    assert bad.exit_code == 1 and "3 to 32 letters" in bad.output
    listed = json.loads(cli("promo", "list", "--json").output)
    assert [(c["code"], c["max_uses"], c["uses"]) for c in listed] == [("LISTED", 100, 0)]


def test_the_backend_api_and_customer_show_list_the_ways_in(client, app, cli):
    from app import apikeys

    create(cli, "SHOWN", "--entitlement", "premium", "--days", "3")
    assert redeem(client, app, 85, "SHOWN").status_code == 200
    key = apikeys.create("backend").key

    user = client.get("/api/v1/users/85", headers={"Authorization": f"Bearer {key}"}).get_json()

    assert [r["code"] for r in user["ways_in"]["promo_redemptions"]] == ["SHOWN"]
    assert user["ways_in"]["trials"] == [] and user["ways_in"]["gifts"] == []
    shown = json.loads(cli("customer", "show", "85", "--json").output)
    assert any("from promo code SHOWN" in line["summary"] for line in shown["timeline"])
