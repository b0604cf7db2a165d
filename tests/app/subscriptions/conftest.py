"""The subscription tests' setup: the Bot API stand-in, fast outgoing webhooks and a plan file with grace, chats and reminders."""
from __future__ import annotations

import pytest

from tests.support.subscriptions import subscriptions_env


@pytest.fixture
def env(env, telegram_api, tmp_path):
    """The Telegram environment with a short grace on `premium_month` and `premium`'s chats and reminders."""
    return subscriptions_env(env, telegram_api, tmp_path)
