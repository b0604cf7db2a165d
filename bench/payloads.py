"""Correctly signed webhook deliveries and initData, as Telegram and Stripe send them."""
from __future__ import annotations

import json
import random
import tomllib
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


# The project's payload builders are imported here and nowhere else in bench/, so moving them is a
# change of these two functions. (Imported late: bench/ is importable without the app's settings.)
def telegram_updates():
    """The project's builders of Telegram Bot API Updates."""
    from simulate import telegram_updates

    return telegram_updates


def stripe_events():
    """The project's builders of Stripe objects and events."""
    from simulate import stripe_events

    return stripe_events


def plans() -> dict[str, dict]:
    """The plan catalogue the bench's service runs with (plans.toml), as its raw tables."""
    return tomllib.loads((config.ROOT / "plans.toml").read_text())["plans"]


def invoice_payload(plan: str, user: int) -> str:
    """The invoice payload the service writes on a Stars invoice for `plan` made out to `user`."""
    from app.telegram.payments import encode_payload

    return encode_payload(plan, user)


def telegram_payment(user: int) -> Payment:
    """A Stars `successful_payment` update for a one-off plan, with the webhook's secret token."""
    updates = telegram_updates()
    charge_id = updates.new_charge_id()
    update = updates.successful_payment_update(user, invoice_payload(TELEGRAM_PLAN, user), STARS_PRICE, charge_id)
    return Payment("telegram", user, telegram_request(update, user=user, external_id=charge_id))


def stripe_event(user: int) -> dict:
    """A `checkout.session.completed` event for a paid one-off Checkout Session of `user`."""
    events = stripe_events()
    session = events.checkout_session(
        mode="payment", payment_status="paid", client_reference_id=str(user),
        metadata={"telegram_id": str(user), "user_id": str(user), "plan": STRIPE_PLAN},
        customer=events.new_id("cus", 14),
    )
    return events.event("checkout.session.completed", session)


def telegram_request(update: dict | str | bytes, **tags) -> dict:
    """The request that delivers a Telegram Update (a dict, or a body as is), with the webhook's secret token."""
    body = _json(update) if isinstance(update, dict) else update
    return {
        "method": "POST", "path": "/webhooks/telegram", "body": body, **tags,
        "headers": {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": config.TELEGRAM_SECRET},
    }


def paid_checkout_session(user: int, plan: str = STRIPE_PLAN, mode: str = "payment") -> dict:
    """A paid Checkout Session naming `user` and `plan` as the service writes them (Stripe has never seen it)."""
    events = stripe_events()
    return events.checkout_session(mode=mode, payment_status="paid", client_reference_id=str(user),
                                   metadata={"telegram_user_id": str(user), "plan": plan}, customer=events.new_id("cus", 14))


def sign_stripe(body: str | bytes, **tags) -> dict:
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
