"""Telegram test setup: a bot token and webhook secret, the fake Bot API as TELEGRAM_API_URL, and helpers.

Test modules import the fixtures they need (`env` overrides the suite's, adding the Telegram settings).
"""
from __future__ import annotations


import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.models import Event
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.support.waiting import wait_for

TOKEN = "7000000001:AAFentitleTestTokenSecretHalf0123456789xyz"
TOKEN_SECRET_HALF = TOKEN.split(":")[1]
SECRET = "whk-entitle-test-secret-0123456789abcdef"
PUBLIC_URL = "https://entitle.example"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


@pytest.fixture
def env(env, telegram_api):
    """The suite's environment plus a bot token, a webhook secret and the fake Bot API."""
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_API_URL=telegram_api.url,
        PUBLIC_URL=PUBLIC_URL,
    )
    return env


def post_update(client, update: dict, headers: dict | None = None):
    """POST an update to the webhook through the Flask test client, with the right secret unless told otherwise."""
    return client.post("/webhooks/telegram", json=update, headers=HEADERS if headers is None else headers)


def payment_update(user_id: int, plan, *, charge_id: str | None = None, payload: str | None = None, **extra) -> dict:
    """A successful_payment update for a catalogue plan, at the plan's price."""
    payload = payload or payments.encode_payload(plan.key, user_id)
    return updates.successful_payment_update(user_id, payload, plan.stars, charge_id or updates.new_charge_id(), **extra)


def status_of(external_id: str) -> str | None:
    """The inbox status of the Telegram event with this external id, or None."""
    event = Event.get_or_none((Event.provider == "telegram") & (Event.external_id == external_id))
    return event.status if event else None


def wait_until_done(external_id: str, status: str = "processed") -> Event:
    """Wait for the worker to bring an event to `status`; returns the row."""
    wait_for(lambda: status_of(external_id) == status, message=f"event {external_id} {status}")
    return Event.get((Event.provider == "telegram") & (Event.external_id == external_id))


def metric(client, name: str, **labels: str) -> float:
    """The value of one sample of `/metrics` (0 when absent)."""
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
