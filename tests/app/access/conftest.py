"""The access tests' setup: the Telegram settings and a plan file whose `premium` has two chats and reminders."""
from __future__ import annotations

import pytest

from tests.support.access import access_env


@pytest.fixture
def env(env, telegram_api, tmp_path):
    """The Telegram environment, with a plan file whose `premium` entitlement has two chats and reminders."""
    return access_env(env, telegram_api, tmp_path)
