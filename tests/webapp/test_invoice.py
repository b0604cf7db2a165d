"""`POST /api/invoice`: a Telegram Stars invoice link for the signed-in Mini App user."""
from __future__ import annotations

import pytest
from flask_jwt_extended import create_access_token

from app import users
from app.plans import STAR_SUBSCRIPTION_PERIOD
from app.telegram import payments
from tests.support.telegram import TOKEN_SECRET_HALF, telegram_env


@pytest.fixture
def env(env, telegram_api):
    """The suite's environment plus the Telegram settings (tests/support/telegram.py)."""
    return telegram_env(env, telegram_api)


@pytest.fixture
def bearer(app):
    users.ensure_user(42, first_name="Ada")
    with app.app_context():
        token = create_access_token(identity="42")
    return {"Authorization": f"Bearer {token}"}


def test_a_subscription_plan_gets_a_subscription_link(client, bearer, telegram_api):
    response = client.post("/api/invoice", json={"plan": "premium_month"}, headers=bearer)

    assert response.status_code == 200
    assert response.get_json()["link"].startswith("https://t.me/$")
    (call,) = telegram_api.calls_to("createInvoiceLink")
    assert call.params["subscription_period"] == str(STAR_SUBSCRIPTION_PERIOD)
    assert (call.params["currency"], call.params["provider_token"]) == ("XTR", "")
    assert call.json("prices") == [{"label": "Premium — 30 days", "amount": 250}]
    payload = payments.decode_payload(call.params["payload"])
    assert (payload.plan, payload.user_id) == ("premium_month", 42)
    assert len(call.params["payload"].encode()) <= 128


def test_a_one_off_plan_gets_a_link_without_a_period(client, bearer, telegram_api):
    response = client.post("/api/invoice", json={"plan": "supporter_lifetime"}, headers=bearer)

    assert response.status_code == 200
    (call,) = telegram_api.calls_to("createInvoiceLink")
    assert "subscription_period" not in call.params
    assert call.json("prices")[0]["amount"] == 1000


def test_without_a_session_token_it_is_401(client, telegram_api):
    response = client.post("/api/invoice", json={"plan": "premium_month"})

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_missing"
    assert telegram_api.calls == []


@pytest.mark.parametrize(
    "body, status, code",
    [({}, 400, "plan_required"), ({"plan": 5}, 400, "plan_required"), ({"plan": "gold"}, 400, "unknown_plan")],
)
def test_a_bad_request_names_the_problem(client, bearer, telegram_api, body, status, code):
    response = client.post("/api/invoice", json=body, headers=bearer)

    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)
    assert telegram_api.calls == []


def test_a_telegram_error_is_502_with_its_description_and_no_token(client, bearer, telegram_api):
    telegram_api.fail("createInvoiceLink", error_code=400, description="Bad Request: STARS_INVOICE_INVALID")

    response = client.post("/api/invoice", json={"plan": "premium_week"}, headers=bearer)

    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "telegram_error" and "STARS_INVOICE_INVALID (400)" in error["message"]
    assert TOKEN_SECRET_HALF not in response.get_data(as_text=True)
