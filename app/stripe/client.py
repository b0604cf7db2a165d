"""The Stripe API client for the settings: stripe-python's `StripeClient`, pointed at a configurable API base.

Every base address (api, connect, files, meter events) goes to `api_base` when one is given,
so a test server set through `STRIPE_API_BASE` sees all traffic and nothing leaks to Stripe.
The HTTP client is stripe-python's own `RequestsClient` with a shorter timeout than its
80-second default: a Mini App request waiting on Checkout should fail fast, and retries
(which stripe-python sends with the same `Idempotency-Key`) cover transient errors.
"""
from __future__ import annotations

import functools

import stripe

from app.config import Settings
from app.redact import redact

__all__ = [
    "DEFAULT_MAX_NETWORK_RETRIES", "DEFAULT_TIMEOUT", "NotConfigured", "client_for", "describe_error", "key_livemode",
    "make_client", "plain",
]

DEFAULT_TIMEOUT = 20.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_NETWORK_RETRIES = 2

# Secret and restricted keys, publishable keys and webhook secrets, masked or not.
_MAX_MESSAGE = 300


def make_client(
    secret_key: str,
    api_base: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES,
) -> stripe.StripeClient:
    """A `StripeClient` for `secret_key` that sends every request to `api_base` (Stripe's when None)."""
    if not secret_key:
        raise ValueError("no Stripe secret key configured (STRIPE_SECRET_KEY)")
    base_addresses = None
    if api_base:
        base = api_base.rstrip("/")
        base_addresses = {"api": base, "connect": base, "files": base, "meter_events": base}
    return stripe.StripeClient(
        secret_key,
        base_addresses=base_addresses,
        max_network_retries=max_network_retries,
        http_client=stripe.RequestsClient(timeout=(min(DEFAULT_CONNECT_TIMEOUT, timeout), timeout)),
    )


class NotConfigured(Exception):
    """STRIPE_SECRET_KEY is not set, so the Stripe API cannot be called."""


@functools.lru_cache(maxsize=8)
def _client(secret_key: str, api_base: str | None) -> stripe.StripeClient:
    return make_client(secret_key, api_base)


def client_for(settings: Settings) -> stripe.StripeClient:
    """The Stripe client for these settings (one per key and base, reused across requests)."""
    if not settings.stripe_secret_key:
        raise NotConfigured("STRIPE_SECRET_KEY is not set")
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


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def describe_error(exc: BaseException) -> str:
    """One plain line (kind, HTTP status, code, message, request id) for a Stripe error; never a key."""
    if not isinstance(exc, stripe.StripeError):
        return _one_line(redact(f"{type(exc).__name__}: {exc}"))
    error = exc.error
    kind = getattr(error, "type", None) if error is not None else None
    details = [f"HTTP {exc.http_status}"] if exc.http_status else []
    details.append(kind or type(exc).__name__)
    if exc.code:
        details.append(f"code {exc.code}")
    decline_code = getattr(error, "decline_code", None) if error is not None else None
    if decline_code:
        details.append(f"decline_code {decline_code}")
    param = getattr(exc, "param", None)
    if param:
        details.append(f"param {param}")
    message = exc.user_message or "no message"
    line = f"Stripe error ({', '.join(details)}): {message}"
    if exc.request_id:
        line += f" [{exc.request_id}]"
    return _one_line(redact(line))
