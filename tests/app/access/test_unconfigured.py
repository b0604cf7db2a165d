"""Without TELEGRAM_BOT_TOKEN, chat removals and reminders are ignored (logged once), never failed."""
from __future__ import annotations

import pytest

from tests.support.access import wait_all_done


@pytest.fixture
def env(env):
    """The access environment (tests/app/access/conftest.py) without a bot token."""
    return {**env, "TELEGRAM_BOT_TOKEN": ""}


def test_without_a_bot_token_invites_and_removals_are_ignored_not_failed(cli, worker, telegram_api):
    assert cli("entitlements", "grant", "42", "premium", "--days", "7").exit_code == 0
    assert cli("entitlements", "revoke", "42", "premium").exit_code == 0

    invites, removals = wait_all_done("chat_invite", 2), wait_all_done("chat_remove", 2)

    assert {r.status for r in invites + removals} == {"ignored"}
    assert "TELEGRAM_BOT_TOKEN is not set" in removals[0].error
    assert telegram_api.calls == []
