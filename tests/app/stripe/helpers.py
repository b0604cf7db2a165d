"""What the Stripe tests share: the environment, signed deliveries, sign-in tokens, a served app and a purchase."""
from __future__ import annotations

import json
import threading
import time

from prometheus_client import REGISTRY

from app import inbox, users
from app.models import Event
from app.plans import Catalogue
from simulate import stripe_events as events
from app.stripe.client import client_for
from app.stripe.checkout import create_checkout_session
from app.stripe.signature import sign_payload
from simulate.stripe_api import DEFAULT_SECRET_KEY

SECRET_KEY = DEFAULT_SECRET_KEY
WEBHOOK_SECRET = "whsec_entitle_current_4f2a9c71d0e5"
OLD_WEBHOOK_SECRET = "whsec_entitle_previous_8b3e15c6aa07"
PUBLIC_URL = "https://entitle.example"


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


def post_event(client, event: dict, **kwargs):
    """POST a signed event to `/webhooks/stripe` through a Flask test client."""
    body, headers = signed(event, **kwargs)
    return client.post("/webhooks/stripe", data=body, headers=headers)


def deliver(runtime, event: dict) -> Event:
    """Record an event in the inbox and run its handler here with the runtime's tables, as a worker would; returns the row after."""
    recorded = inbox.record("stripe", event["id"], event["type"], event)
    try:
        inbox.process(recorded.event.id, handlers=runtime.handlers, context=runtime.context, final_attempt=True)
    except Exception:
        pass
    return Event.get_by_id(recorded.event.id)


# The Stripe prices of the card plans in plans.toml.
PRICES = {"premium_week": "price_premium_week", "premium_month": "price_premium_month"}


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


def sample(name: str, **labels) -> float:
    """The current value of a metric sample (0 when never touched)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def buy(client, app, stripe_api, telegram_id: int, plan: str = "premium_week") -> dict:
    """Start a Checkout for a signed-in user, pay it at the fake, and return through the success page; returns the paid session."""
    created = client.post("/api/checkout", json={"plan": plan}, headers=token_for(app, telegram_id))
    assert created.status_code == 200, created.get_json()
    session = stripe_api.set_checkout_session(created.get_json()["id"], payment_status="paid")
    page = client.get(f"/checkout/success?session_id={session['id']}")
    assert page.status_code == 200 and "Payment received" in page.get_data(as_text=True)
    return session


class LiveServer:
    """The app served over HTTP on a free port, in a thread."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="entitle-live-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def now() -> int:
    """The current Unix time in whole seconds."""
    return int(time.time())
