"""The Stripe API client: stripe-python's `StripeClient`, pointed at a configurable API base.

Every base address (api, connect, files, meter events) goes to `api_base` when one is given,
so a test server set through `STRIPE_API_BASE` sees all traffic and nothing leaks to Stripe.
The HTTP client is stripe-python's own `RequestsClient` with a shorter timeout than its
80-second default: a Mini App request waiting on Checkout should fail fast, and retries
(which stripe-python sends with the same `Idempotency-Key`) cover transient errors.
"""
from __future__ import annotations


import stripe

from app.redact import redact

__all__ = ["DEFAULT_MAX_NETWORK_RETRIES", "DEFAULT_TIMEOUT", "describe_stripe_error", "make_client"]

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


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def describe_stripe_error(exc: BaseException) -> str:
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
