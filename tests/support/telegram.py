"""Telegram in tests: a bot token and webhook secret, the environment that points at the Bot API stand-in, and updates to post."""
from __future__ import annotations

import json

from app.models import Event
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.support.delivery import Webhook
from tests.support.waiting import wait_for

TOKEN = "7000000001:AAFentitleTestTokenSecretHalf0123456789xyz"
TOKEN_SECRET_HALF = TOKEN.split(":")[1]
SECRET = "whk-entitle-test-secret-0123456789abcdef"
PUBLIC_URL = "https://entitle.example"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
WEBHOOK_PATH = "/webhooks/telegram"


def telegram_env(env: dict, telegram_api) -> dict:
    """`env` plus a bot token, a webhook secret, the stand-in Bot API and the public address."""
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_API_URL=telegram_api.url,
        PUBLIC_URL=PUBLIC_URL,
    )
    return env


def telegram_webhook(update: dict, headers: dict | None = None) -> Webhook:
    """An update as Telegram posts it, with the right secret token unless told otherwise."""
    merged = {"Content-Type": "application/json", **(HEADERS if headers is None else headers)}
    return Webhook("telegram", WEBHOOK_PATH, json.dumps(update).encode(), merged)


def post_update(client, update: dict, headers: dict | None = None):
    """POST an update to the webhook through the Flask test client, with the right secret unless told otherwise."""
    return telegram_webhook(update, headers).post(client)


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


def most_in_one_second(times: list[float], span: float = 1.0) -> int:
    """The most of these times (seconds) that fall in any one second (or `span`), as the Bot API stand-in counts its limits."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - span:
            first += 1
        most = max(most, last - first + 1)
    return most
