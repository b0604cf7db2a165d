"""`entitle access audit`, `telegram set-webhook` asking for join requests, and the catalogue's chat ids checked."""
from __future__ import annotations

import json

import pytest

from tests.support.access import CHAT_A, CHAT_B, access_env


@pytest.fixture
def env(env, telegram_api, tmp_path):
    """The Telegram environment with a plan file whose `premium` has two chats (tests/support/access.py)."""
    return access_env(env, telegram_api, tmp_path)


def test_audit_lists_members_who_hold_nothing_and_fix_removes_them_but_not_admins(cli, telegram_api):
    cli("entitlements", "grant", "42", "premium", "--days", "7")
    cli("entitlements", "grant", "43", "premium", "--days", "7")
    cli("entitlements", "grant", "44", "premium", "--days", "7")
    cli("entitlements", "revoke", "43", "premium")
    cli("entitlements", "revoke", "44", "premium")
    for chat in (CHAT_A, CHAT_B):
        telegram_api.set_member(chat, 42, "member")
        telegram_api.set_member(chat, 43, "member")
        telegram_api.set_member(chat, 44, "administrator")

    checked = cli("access", "audit", "--json")

    assert checked.exit_code == 1
    rows = json.loads(checked.stdout)
    verdicts = {(r["user"], r["chat"]): r["verdict"] for r in rows}
    assert verdicts[(42, CHAT_A)] == "ok" and verdicts[(43, CHAT_A)] == "should_leave" and verdicts[(44, CHAT_B)] == "admin"
    assert telegram_api.calls_to("banChatMember") == []

    fixed = cli("access", "audit", "--fix", "--entitlement", "premium", "--json")

    assert fixed.exit_code == 0, fixed.output
    assert {r["verdict"] for r in json.loads(fixed.stdout) if r["user"] == 43} == {"removed"}
    assert sorted(c.params["user_id"] for c in telegram_api.calls_to("banChatMember")) == ["43", "43"]
    assert telegram_api.member_status(CHAT_A, 44) == "administrator"


def test_audit_keeps_a_member_whom_another_entitlement_listing_the_chat_keeps_in(cli, env, telegram_api, tmp_path):
    shared = tmp_path / "shared.toml"
    shared.write_text(open(env["PLANS_FILE"]).read() + f"""
[entitlements.supporter]
title = "Supporter"
chats = [{CHAT_A}]
""")
    cli("entitlements", "grant", "42", "premium", "--days", "7", PLANS_FILE=str(shared))
    cli("entitlements", "grant", "42", "supporter", "--days", "30", PLANS_FILE=str(shared))
    cli("entitlements", "revoke", "42", "premium", PLANS_FILE=str(shared))
    for chat in (CHAT_A, CHAT_B):
        telegram_api.set_member(chat, 42, "member")

    fixed = cli("access", "audit", "--fix", "--json", PLANS_FILE=str(shared))

    rows = {(r["entitlement"], r["chat"]): r for r in json.loads(fixed.stdout)}
    assert rows[("premium", CHAT_A)]["verdict"] == "ok" and rows[("premium", CHAT_A)]["kept_by"] == "supporter"
    assert rows[("supporter", CHAT_A)]["verdict"] == "ok"
    assert rows[("premium", CHAT_B)]["verdict"] == "removed"
    assert [c.params["chat_id"] for c in telegram_api.calls_to("banChatMember")] == [str(CHAT_B)]
    assert telegram_api.member_status(CHAT_A, 42) == "member"


def test_set_webhook_asks_for_join_requests_when_an_entitlement_has_chats(cli, telegram_api):
    result = cli("telegram", "set-webhook", "--json")

    assert result.exit_code == 0, result.output
    assert telegram_api.webhook["allowed_updates"] == ["message", "pre_checkout_query", "callback_query", "subscription", "chat_join_request"]


def test_a_positive_chat_id_stops_the_cli_naming_the_file_key_and_id(cli, env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(open(env["PLANS_FILE"]).read().replace(str(CHAT_B), "12345"))

    result = cli("access", "audit", PLANS_FILE=str(bad))

    assert result.exit_code == 1
    assert f"{bad}: entitlement 'premium': chat id 12345 must be a negative integer" in result.output


def test_audit_without_chats_in_the_catalogue_says_no_entitlement_lists_a_chat(cli, env, tmp_path):
    plans = tmp_path / "no-chats.toml"
    plans.write_text('[plans.week]\ntitle = "Week"\nentitlement = "premium"\ndays = 7\nstars = 75\n')

    result = cli("access", "audit", PLANS_FILE=str(plans))

    assert result.exit_code == 0, result.output
    assert "no entitlement lists a chat" in " ".join(result.stdout.split())
