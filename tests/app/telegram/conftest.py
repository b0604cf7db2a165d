"""The Telegram tests' setup: a bot token and webhook secret, the Bot API stand-in as TELEGRAM_API_URL."""
from __future__ import annotations

import pytest

from tests.support.telegram import telegram_env


@pytest.fixture
def env(env, telegram_api):
    """The suite's environment plus a bot token, a webhook secret and the fake Bot API."""
    return telegram_env(env, telegram_api)
