"""The Mini App's Subscriptions section in headless Chromium: each subscription with its state and its next renewal
or end, and the cancel and resume buttons reaching Telegram's editUserStarSubscription through the real API.

Keeps docs/screenshots/{light,dark}-subscriptions.png up to date.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from app import entitlements, subscriptions, users
from app.db import transaction
from app.plans import Catalogue
from tests.webapp.test_miniapp_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TOKEN, USER, MiniApp, fresh_init_data

pytestmark = pytest.mark.browser

PAYLOAD = f"e1:premium_month:{USER['id']}:abcdef01"
CHARGE = "stxBrowserSubscriptionCharge0001"


@pytest.fixture
def env(env, telegram_api):
    """The test bot's token, with the Bot API stand-in answering editUserStarSubscription."""
    env.update(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram_api.url)
    return env


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, or a skip saying what is missing (a failure in CI, which installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs it")
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def _star_subscription(settings) -> None:
    """A Star subscription to premium_month, paid until a fixed date (so the screenshots change only with the page)."""
    user = users.ensure_user(USER["id"], first_name="Grace")
    plan = Catalogue.from_file(settings.plans_file).get("premium_month")
    end = datetime(2031, 1, 31, 12)
    with transaction():
        entitlements.grant(user, "premium", source="telegram", reference=CHARGE, until=end, plan=plan.key,
                           subscription_id=f"telegram:{PAYLOAD}")
        subscriptions.observe_payment(user, plan, provider="telegram", key=f"telegram:{PAYLOAD}", period_end=end,
                                      charge_id=CHARGE, actor="telegram")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_subscriptions_section_cancels_and_resumes_a_star_subscription(browser, live_server, settings, telegram_api, scheme):
    _star_subscription(settings)
    mini_app = MiniApp(browser, live_server, fresh_init_data(), scheme=scheme)
    try:
        page = mini_app.page
        page.locator("#content").wait_for(state="visible")
        row = page.locator("li.subscription")
        row.wait_for(state="visible")

        assert page.locator(".section-header").all_text_contents()[:2] == ["Your access", "Subscriptions"]
        assert "Premium — 30 days" in row.inner_text() and row.locator(".badge").inner_text() == "Renews"
        assert row.locator(".terms").inner_text() == "Renews on Jan 31, 2031"

        row.locator(".subscription-cancel").click()
        page.locator('li.subscription[data-state="canceled"]').wait_for(state="visible")
        assert row.locator(".terms").inner_text() == "Yours until Jan 31, 2031; it will not renew"
        page.locator("#notice", has_text="is canceled. It stays yours until Jan 31, 2031.").wait_for(state="visible")
        [canceled] = telegram_api.calls_to("editUserStarSubscription")
        assert (canceled.params["user_id"], canceled.params["telegram_payment_charge_id"]) == (str(USER["id"]), CHARGE)
        assert canceled.params["is_canceled"].lower() == "true"
        mini_app.screenshot(f"{scheme}-subscriptions.png", SCREENSHOTS)

        row.locator(".subscription-resume").click()
        page.locator('li.subscription[data-state="active"]').wait_for(state="visible")
        assert [c.params["is_canceled"].lower() for c in telegram_api.calls_to("editUserStarSubscription")] == ["true", "false"]
        assert mini_app.errors == []
    finally:
        mini_app.close()
