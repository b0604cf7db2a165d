"""The chat door's paywall in headless Chromium: a stranger's join request opens it with the chat's plans only."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.telegram import telegram_env
from tests.webapp.test_miniapp_browser import TOKEN, USER, MiniApp, fresh_init_data

pytestmark = pytest.mark.browser

CHAT = -1001000000055
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def env(env, telegram_api, stripe_api, tmp_path):
    from tests.support.stripe import stripe_env

    telegram_env(env, telegram_api)
    env["TELEGRAM_BOT_TOKEN"] = TOKEN
    env.update(stripe_env(stripe_api))
    stripe_api.put_price(price_id="price_premium_month", unit_amount=499, currency="usd", interval="month")
    stripe_api.put_price(price_id="price_premium_week", unit_amount=1990, currency="eur", interval=None)
    plans = tmp_path / "plans.toml"
    plans.write_text((Path(__file__).resolve().parents[2] / "plans.toml").read_text()
                     + f'\n[entitlements.premium]\ntitle = "Premium"\nchats = [{CHAT}]\n')
    env["PLANS_FILE"] = str(plans)
    return env


def join_query(live_server: str, env: dict, user_id: int, query_id: str) -> dict:
    update = {"update_id": 1, "chat_join_request": {
        "chat": {"id": CHAT, "type": "supergroup", "title": "Premium lounge"},
        "from": {"id": user_id, "is_bot": False, "first_name": "Grace"}, "user_chat_id": user_id, "date": 1700000000,
        "query_id": query_id}}
    response = requests.post(f"{live_server}/webhooks/telegram", json=update, timeout=10,
                             headers={"X-Telegram-Bot-Api-Secret-Token": env["TELEGRAM_WEBHOOK_SECRET"]})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_strangers_join_request_opens_the_paywall_with_only_the_chats_plans(chromium, live_server, env, telegram_api):
    assert join_query(live_server, env, USER["id"], "q-browser")["decision"] == "paywall"
    (call,) = telegram_api.calls_to("sendChatJoinRequestWebApp")
    token = parse_qs(urlsplit(call.params["web_app_url"]).query)["join"][0]

    mini_app = MiniApp(chromium, live_server, fresh_init_data())
    try:
        page = mini_app.page
        page.goto(f"{live_server}/app?join={token}")
        page.locator("#paywall").wait_for(state="visible")
        assert page.locator("#paywall-title").inner_text() == "Join Premium lounge"
        assert "approved at once" in page.locator("#paywall-hint").inner_text()
        shown = sorted(page.locator("li.plan").evaluate_all("items => items.map(i => i.dataset.plan)"))
        assert shown == ["premium_month", "premium_week"]  # not the supporter plan, which opens no chat
        assert page.locator('li[data-plan="premium_week"] .buy-card').inner_text() == "Pay by card · €19.90"
        assert mini_app.errors == []
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / "miniapp-paywall.png"), full_page=True)
    finally:
        mini_app.close()


def test_a_paywall_link_opened_by_another_user_shows_no_plans(chromium, live_server, env, telegram_api):
    join_query(live_server, env, 4242, "q-browser-other")
    (call,) = telegram_api.calls_to("sendChatJoinRequestWebApp")
    token = parse_qs(urlsplit(call.params["web_app_url"]).query)["join"][0]

    mini_app = MiniApp(chromium, live_server, fresh_init_data())
    try:
        page = mini_app.page
        page.goto(f"{live_server}/app?join={token}")
        page.locator("#paywall").wait_for(state="visible")
        assert page.locator("#paywall-title").inner_text() == "This invitation is not for you"
        assert page.locator("li.plan").count() == 0
    finally:
        mini_app.close()
