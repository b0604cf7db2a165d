"""The ways-in tests' setup: the Telegram and Stripe stand-ins, and a catalogue whose premium plans offer trials."""
from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.support.stripe import stripe_env
from tests.support.telegram import telegram_env


@pytest.fixture
def env(env, telegram_api, stripe_api, tmp_path):
    """Telegram and Stripe settings, and plans.toml with `trial_days` on premium_week (Stars) and premium_month (a card subscription)."""
    telegram_env(env, telegram_api)
    env.update(stripe_env(stripe_api))
    text = (ROOT / "plans.toml").read_text()
    text = text.replace("[plans.premium_week]\n", "[plans.premium_week]\ntrial_days = 3\n", 1)
    text = text.replace("[plans.premium_month]\n", "[plans.premium_month]\ntrial_days = 7\nstripe_promotion_codes = true\n", 1)
    plans = tmp_path / "plans.toml"
    plans.write_text(text)
    env["PLANS_FILE"] = str(plans)
    return env
