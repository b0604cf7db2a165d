"""Stripe in tests: the environment that points at the Stripe stand-in, signed events, a purchase and a sign-in token."""
from __future__ import annotations

import json
import time

from app import users
from app.plans import Catalogue
from app.stripe.checkout import create_checkout_session
from app.stripe.client import client_for
from app.stripe.signature import sign_payload
from simulate import stripe_events as events
from simulate.stripe_api import DEFAULT_SECRET_KEY
from tests.support.delivery import Webhook

SECRET_KEY = DEFAULT_SECRET_KEY
WEBHOOK_SECRET = "whsec_entitle_current_4f2a9c71d0e5"
OLD_WEBHOOK_SECRET = "whsec_entitle_previous_8b3e15c6aa07"
PUBLIC_URL = "https://entitle.example"
WEBHOOK_PATH = "/webhooks/stripe"

# The Stripe prices of the card plans in plans.toml.
PRICES = {"premium_week": "price_premium_week", "premium_month": "price_premium_month"}


def stripe_env(stripe_api) -> dict:
    """Stripe settings pointing at the fake API, with two webhook secrets as during a rotation."""
    return {
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
        "STRIPE_API_BASE": stripe_api.url,
        "PUBLIC_URL": PUBLIC_URL,
    }


def signed(event: dict, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, dict]:
    """A webhook body and its headers, signed as Stripe signs them."""
    body = json.dumps(event).encode()
    return body, {"Stripe-Signature": sign_payload(body, secret, timestamp), "Content-Type": "application/json; charset=utf-8"}


def stripe_webhook(event: dict, **signing) -> Webhook:
    """An event as Stripe posts it, signed (with the current secret unless told otherwise)."""
    body, headers = signed(event, **signing)
    return Webhook("stripe", WEBHOOK_PATH, body, headers)


def post_event(client, event: dict, **signing):
    """POST a signed event to `/webhooks/stripe` through a Flask test client."""
    return stripe_webhook(event, **signing).post(client)


def completed(user_id: int = 42, plan: str = "premium_week", *, stripe_api=None, prices=None, **fields) -> dict:
    """A `checkout.session.completed` event for a session entitle started for this user and plan (paid unless told otherwise).

    With `stripe_api`, Stripe knows the session too, its line items billing `prices` (default: the plan's price).
    """
    session = events.checkout_session(client_reference_id=str(user_id), metadata={"telegram_user_id": str(user_id), "plan": plan}, **fields)
    if stripe_api is not None:
        stripe_api.put_checkout_session(session, prices=[PRICES.get(plan, "price_unknown")] if prices is None else prices)
    return events.event("checkout.session.completed", session)


def paid_subscription(stripe_api, settings, telegram_id: int = 42) -> dict:
    """A subscription bought through a Checkout Session created by entitle and paid at the fake."""
    user = users.ensure_user(telegram_id)
    plan = Catalogue.from_file(settings.plans_file).get("premium_month")
    session = create_checkout_session(client_for(settings), settings, user, plan)
    return stripe_api.set_checkout_session(session["id"], payment_status="paid")


def token_for(app, telegram_id: int) -> dict:
    """An Authorization header for a signed-in Mini App user."""
    from flask_jwt_extended import create_access_token

    with app.app_context():
        return {"Authorization": f"Bearer {create_access_token(identity=str(telegram_id))}"}


def buy(client, app, stripe_api, telegram_id: int, plan: str = "premium_week") -> dict:
    """Start a Checkout for a signed-in user, pay it at the fake, and return through the success page; returns the paid session."""
    created = client.post("/api/checkout", json={"plan": plan}, headers=token_for(app, telegram_id))
    assert created.status_code == 200, created.get_json()
    session = stripe_api.set_checkout_session(created.get_json()["id"], payment_status="paid")
    page = client.get(f"/checkout/success?session_id={session['id']}")
    assert page.status_code == 200 and "Payment received" in page.get_data(as_text=True)
    return session


def now() -> int:
    """The current Unix time in whole seconds."""
    return int(time.time())
