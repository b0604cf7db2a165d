"""What every Stripe module shares: the source name of grants, and the client for the configured key."""
from __future__ import annotations

import functools

import stripe

from app.config import Settings
from app.stripe.client import make_client

SOURCE = "stripe"


class StripeNotConfigured(Exception):
    """STRIPE_SECRET_KEY is not set, so the Stripe API cannot be called."""


class NothingToDo(Exception):
    """The Stripe object needs no grant or revocation here (not ours, not paid, not a subscription's)."""


class CannotFulfil(Exception):
    """A payment cannot be turned into a grant until an operator acts (an unknown plan or price)."""


@functools.lru_cache(maxsize=8)
def _client(secret_key: str, api_base: str | None) -> stripe.StripeClient:
    return make_client(secret_key, api_base)


def client_for(settings: Settings) -> stripe.StripeClient:
    """The Stripe client for these settings (one per key and base, reused across requests)."""
    if not settings.stripe_secret_key:
        raise StripeNotConfigured("STRIPE_SECRET_KEY is not set")
    return _client(settings.stripe_secret_key, settings.stripe_api_base)


def key_livemode(secret_key: str | None) -> bool | None:
    """True for a live key, False for a test key, None when no key (or an unknown kind) is set."""
    if not secret_key:
        return None
    if secret_key.startswith(("sk_live_", "rk_live_")):
        return True
    if secret_key.startswith(("sk_test_", "rk_test_")):
        return False
    return None


def plain(obj) -> dict:
    """A stripe-python object (or a dict) as a plain dict."""
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else dict(obj)
