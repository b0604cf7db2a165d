"""Correctly signed webhook deliveries and initData, as Telegram and Stripe send them."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass

from bench import config

TELEGRAM_PLAN = "premium_week"
STRIPE_PLAN = "premium_week"
STRIPE_PRICE = "price_premium_week"  # the `stripe_price` of STRIPE_PLAN in plans.toml
STARS_PRICE = 75
SANDBOX_BATCH = 500

# The sandbox (`bench.fakes`) the service reads Checkout Sessions back from; set by `use_sandbox`.
_sandbox_url: str | None = None


def use_sandbox(url: str | None) -> None:
    """Tell every Checkout Session made up from now on to the sandbox at `url`, so the service finds it (None: stop)."""
    global _sandbox_url
    _sandbox_url = url


@dataclass(frozen=True)
class Payment:
    """One payment: who paid, through which provider, and the HTTP request that reports it."""

    provider: str
    user: int
    request: dict


def _json(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"))


def telegram_payment(user: int) -> Payment:
    """A Stars `successful_payment` update for a one-off plan, with the webhook's secret token."""
    from app.telegram.payments import encode_payload
    from simulate.telegram_updates import new_charge_id, successful_payment_update

    charge_id = new_charge_id()
    update = successful_payment_update(user, encode_payload(TELEGRAM_PLAN, user), STARS_PRICE, charge_id)
    return Payment("telegram", user, {
        "method": "POST", "path": "/webhooks/telegram", "body": _json(update), "user": user, "external_id": charge_id,
        "headers": {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": config.TELEGRAM_SECRET},
    })


def stripe_event(user: int) -> dict:
    """A `checkout.session.completed` event for a paid one-off Checkout Session of `user`."""
    from simulate import stripe_events as events

    session = events.checkout_session(
        mode="payment", payment_status="paid", client_reference_id=str(user),
        metadata={"telegram_id": str(user), "user_id": str(user), "plan": STRIPE_PLAN},
        customer=events.new_id("cus", 14),
    )
    return events.event("checkout.session.completed", session)


def sign_stripe(body: str, **tags) -> dict:
    """The request that delivers a Stripe event body, signed now with the endpoint secret."""
    from app.stripe.signature import sign_payload

    return {
        "method": "POST", "path": "/webhooks/stripe", "body": body, **tags,
        "headers": {"Content-Type": "application/json", "Stripe-Signature": sign_payload(body, config.STRIPE_SECRET)},
    }


def stripe_payment(user: int) -> Payment:
    """A signed Stripe webhook reporting a paid Checkout Session of `user`."""
    event = stripe_event(user)
    return Payment("stripe", user, sign_stripe(_json(event), user=user, external_id=event["id"]))


def payments(count: int, first_user: int = 1_000_000, providers: tuple[str, ...] = ("telegram", "stripe"),
             seed: int = 7) -> list[Payment]:
    """`count` payments by distinct users, alternating between the providers given."""
    build = {"telegram": telegram_payment, "stripe": stripe_payment}
    paid = [build[providers[i % len(providers)]](first_user + i) for i in range(count)]
    if _sandbox_url is not None:
        tell_sandbox(_sandbox_url, paid)
    return paid


def tell_sandbox(url: str, paid: list[Payment]) -> None:
    """Store the Checkout Sessions of these payments at the sandbox, billing STRIPE_PRICE, in batches."""
    from simulate.sandbox import tell_stripe_checkouts

    sessions = [{"session": json.loads(p.request["body"])["data"]["object"], "prices": [STRIPE_PRICE]}
                for p in paid if p.provider == "stripe"]
    for i in range(0, len(sessions), SANDBOX_BATCH):
        tell_stripe_checkouts(url, config.STRIPE_KEY, sessions[i:i + SANDBOX_BATCH])


def deliveries(paid: list[Payment], times: int, seed: int = 11) -> list[dict]:
    """Every payment's request `times` times, shuffled (duplicates arrive in any order)."""
    items = [p.request for p in paid for _ in range(times)]
    random.Random(seed).shuffle(items)
    return items


def init_data(user: int) -> str:
    """initData for `user`, signed with the benchmark bot's token now."""
    from app.telegram.initdata import sign_init_data

    return sign_init_data(config.BOT_TOKEN, user={"id": user, "first_name": "Bench", "username": f"bench{user}",
                                                  "language_code": "en"}, query_id=f"AAH{user}")


def session_request(user: int) -> dict:
    """`POST /api/session` with a fresh initData in the JSON body."""
    return {"method": "POST", "path": "/api/session", "body": _json({"init_data": init_data(user)}),
            "headers": {"Content-Type": "application/json"}}
