"""The fault tests' setup: both providers configured with the secrets the bench payloads are signed with."""
from __future__ import annotations

import pytest

from bench import config


@pytest.fixture
def env(env, telegram_api, stripe_api):
    """The suite's environment plus the secrets the webhooks are signed with and both fake provider APIs."""
    env.update(
        TELEGRAM_BOT_TOKEN=config.BOT_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=config.TELEGRAM_SECRET,
        TELEGRAM_API_URL=telegram_api.url,
        STRIPE_SECRET_KEY=stripe_api.secret_key or config.STRIPE_KEY,
        STRIPE_WEBHOOK_SECRET=config.STRIPE_SECRET,
        STRIPE_API_BASE=stripe_api.url,
    )
    return env
