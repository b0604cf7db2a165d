"""Trials, codes and gifts in the Mini App, in headless Chromium: each button reaches the service as a payer would use it."""
from __future__ import annotations

from pathlib import Path

import pytest

from app import users
from app.models import Grant
from app.ways import promo
from tests.webapp.test_miniapp_browser import TOKEN, USER, MiniApp, fresh_init_data

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def env(env, stripe_api, tmp_path):
    from tests.support.stripe import stripe_env

    env["TELEGRAM_BOT_TOKEN"] = TOKEN
    env.update(stripe_env(stripe_api))
    stripe_api.put_price(price_id="price_premium_month", unit_amount=499, currency="usd", interval="month")
    stripe_api.put_price(price_id="price_premium_week", unit_amount=1990, currency="eur", interval=None)
    text = (Path(__file__).resolve().parents[2] / "plans.toml").read_text()
    plans = tmp_path / "plans.toml"
    plans.write_text(text.replace("[plans.premium_week]\n", "[plans.premium_week]\ntrial_days = 3\n", 1))
    env["PLANS_FILE"] = str(plans)
    return env


def test_a_payer_starts_a_trial_redeems_a_code_and_buys_a_gift(chromium, live_server):
    promo.create(promo.NewCode("SUPPORT5", "supporter", 5))
    mini_app = MiniApp(chromium, live_server, fresh_init_data())
    try:
        page = mini_app.page
        page.locator("#content").wait_for(state="visible")
        week = page.locator('li[data-plan="premium_week"]')
        assert week.locator(".start-trial").inner_text() == "Try free for 3 days"
        assert page.locator('li[data-plan="premium_month"] .give-gift').count() == 0  # a subscription is no gift
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / "miniapp-ways-in.png"), full_page=True)

        week.locator(".start-trial").click()
        page.locator("#notice").filter(has_text="Your free trial has started.").wait_for()
        page.locator('li[data-entitlement="premium"]').wait_for()
        assert page.locator('li[data-plan="premium_week"] .start-trial').count() == 0  # once
        (trial,) = list(Grant.select().where(Grant.source == "trial"))
        assert trial.user.telegram_id == USER["id"]

        page.locator("#promo-code").fill("support5")
        page.locator("button.redeem").click()
        page.locator("#notice").filter(has_text="Code SUPPORT5 redeemed.").wait_for()
        page.locator('li[data-entitlement="supporter"]').wait_for()
        page.locator("#promo-code").fill("support5")
        page.locator("button.redeem").click()
        page.locator("#notice").filter(has_text="You have already used that code.").wait_for()

        page.locator('li[data-plan="supporter_lifetime"] .give-gift').click()
        page.wait_for_function("() => window.__telegram.openInvoice.length === 1")
        [invoice] = mini_app.posted["/api/invoice"]
        assert invoice["body"] == {"plan": "supporter_lifetime", "gift": True}
        assert mini_app.errors == []
    finally:
        mini_app.close()
    assert users.find_user(USER["id"]) is not None
