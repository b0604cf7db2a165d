"""Subscriptions in tests: a catalogue with chats, reminders and a short grace, Star subscription payments and updates."""
from __future__ import annotations

import time

from app.models import Subscription
from app.plans import Catalogue
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.conftest import ROOT
from tests.support.access import ACCESS_TABLE
from tests.support.delivery import deliver
from tests.support.telegram import telegram_env, telegram_webhook
from tests.support.webhook_receiver import FAST_WEBHOOKS

GRACE_DAYS = 0.0001  # 8.64 seconds


def subscriptions_env(env: dict, telegram_api, tmp_path, *, grace_days: float = GRACE_DAYS) -> dict:
    """`env` plus the bot's settings and a plan file whose `premium_month` has a short grace and `premium` chats and reminders."""
    text = (ROOT / "plans.toml").read_text().replace(
        'stripe_mode = "subscription"\n', f'stripe_mode = "subscription"\ngrace_days = {grace_days}\n', 1
    )
    plans = tmp_path / "plans.toml"
    plans.write_text(text + ACCESS_TABLE)
    telegram_env(env, telegram_api)
    env.update(FAST_WEBHOOKS, PLANS_FILE=str(plans))
    return env


def month_plan(settings):
    """The catalogue's Star subscription plan."""
    return Catalogue.from_file(settings.plans_file).get("premium_month")


class StarSubscription:
    """One payer's Star subscription as Telegram sends it: the first payment, renewals and `subscription` updates."""

    def __init__(self, client, settings, user_id: int):
        self.client = client
        self.plan = month_plan(settings)
        self.user_id = user_id
        self.payload = payments.encode_payload(self.plan.key, user_id)
        self.charges: list[str] = []

    def pay(self, expires_at: float, *, first: bool | None = None):
        """Deliver a payment of this subscription (the first unless told otherwise) ending at `expires_at`; the inbox row."""
        charge = updates.new_charge_id()
        first = not self.charges if first is None else first
        update = updates.successful_payment_update(
            self.user_id, self.payload, self.plan.stars, charge, subscription_expiration_date=int(expires_at),
            is_recurring=True, is_first_recurring=first,
        )
        self.charges.append(charge)
        return deliver(self.client, telegram_webhook(update))

    def update(self, state: str, *, user_id: int | None = None, payload: str | None = None):
        """Deliver a `subscription` update in `state`; the inbox row once a worker handled it."""
        update = updates.subscription_update(user_id or self.user_id, payload or self.payload, state)
        return deliver(self.client, telegram_webhook(update))

    @property
    def record(self) -> Subscription:
        """The subscription's record as it is now."""
        return Subscription.get(Subscription.key == f"telegram:{self.payload}")


def in_seconds(seconds: float) -> float:
    """A Unix time `seconds` from now."""
    return time.time() + seconds


class CardSubscription:
    """One payer's Stripe subscription to `premium_month`, kept in the Stripe stand-in, and the events Stripe sends about it."""

    PRICE = "price_premium_month"

    def __init__(self, stripe_api, telegram_id: int):
        from simulate import stripe_events as events

        self.events = events
        self.stripe_api = stripe_api
        self.telegram_id = telegram_id
        self.metadata = {"telegram_user_id": str(telegram_id), "plan": "premium_month"}
        self.customer = stripe_api.put_customer(metadata=self.metadata)["id"]
        self.id = events.new_id("sub")

    def state(self, start: float, end: float, **fields) -> dict:
        """The subscription as Stripe has it from now on (with this period and status), and the object its events carry."""
        sub = self.events.subscription(
            subscription_id=self.id, customer=self.customer, price=self.events.price(price_id=self.PRICE, interval="month"),
            metadata=self.metadata, current_period_start=int(start), current_period_end=int(end), created=int(start), **fields,
        )
        self.stripe_api.put_subscription(sub)
        return sub

    def invoice(self, sub: dict, start: float, end: float, *, paid: bool = True) -> dict:
        """An invoice of the subscription for one period, kept in the stand-in (paid unless told otherwise); as events carry it."""
        invoice = self.events.invoice(
            customer=self.customer, subscription=self.id, subscription_item=sub["items"]["data"][0]["id"],
            subscription_metadata=self.metadata, price=self.events.price(price_id=self.PRICE, interval="month"),
            billing_reason="subscription_cycle", period_start=int(start), period_end=int(end),
            payment_intent=self.events.new_id("pi"), created=int(start),
            **({} if paid else {"status": "open"}),
        )
        self.stripe_api.put_invoice(invoice)
        invoice = dict(invoice)
        invoice.pop("payments", None)  # webhook payloads carry no payments; the handler reads them back
        return invoice

    def event(self, type_: str, obj: dict, **fields) -> dict:
        """A Stripe event about `obj`."""
        return self.events.event(type_, obj, **fields)
