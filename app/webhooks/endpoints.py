"""Webhook endpoints: added with a fresh signing secret (shown once), listed without it, removed."""
from __future__ import annotations

import time

from dataclasses import dataclass
from urllib.parse import urlsplit

from app import text
from app.clock import iso, utcnow
from app.db import transaction
from app.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret

# The contract's message types; `ping` is sent only by `webhooks test`, to the endpoint it names.
EVENT_TYPES = (
    "entitlement.started", "entitlement.extended", "entitlement.ended", "payment.succeeded", "payment.refunded",
    "promo.redeemed", "gift.redeemed", "ping",
    "subscription.canceled", "subscription.resumed", "subscription.past_due", "subscription.ended",
)


class EndpointError(ValueError):
    """An endpoint cannot be added as asked (the message says why)."""


@dataclass(frozen=True)
class AddedEndpoint:
    """A new endpoint and its signing secret, which is never shown again."""

    row: WebhookEndpoint
    secret: str


def check_url(url: str) -> str:
    """The URL, if it is an absolute http(s) address with a usable port; else EndpointError saying what is wrong."""
    if not url or any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in url) or not text.storable(url):
        raise EndpointError("URL must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        found = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise EndpointError(f"URL has {found}; it must be an absolute http:// or https:// address")
    if not parts.hostname:
        raise EndpointError("URL has no host; it must be an absolute http:// or https:// address")
    try:
        valid_port = parts.port != 0
    except ValueError:  # not digits, or beyond 65535
        valid_port = False
    if not valid_port:
        written = parts.netloc.rsplit(":", 1)[-1]
        raise EndpointError(f"URL has port {text.visible(written)!r}, which is not a port number (1 to 65535)")
    return url


def safe_url(url: str) -> str:
    """The endpoint's address without credentials or query (which may carry a token), for logs and status."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def check_events(events: list[str] | None) -> list[str] | None:
    """The event filter, each a known type (None or empty: every type)."""
    if not events:
        return None
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise EndpointError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    return sorted(set(events))


def add(url: str, events: list[str] | None = None) -> AddedEndpoint:
    """Add an endpoint with a new secret; the returned secret is the only time it is handed out."""
    url, events = check_url(url), check_events(events)
    secret = new_secret()
    with transaction():
        row = WebhookEndpoint.create(url=url, secret=secret, events=events)
    forget_subscriptions()
    return AddedEndpoint(row, secret)


def live() -> list[WebhookEndpoint]:
    """Endpoints not removed, oldest first."""
    return list(WebhookEndpoint.select().where(WebhookEndpoint.removed_at.is_null()).order_by(WebhookEndpoint.id))


# Every grant asks which endpoints take its messages; the answer is kept this long in each process,
# so an endpoint added elsewhere receives the messages of changes made from a second after it.
SUBSCRIBED_FOR_SECONDS = 1.0
_live_cache: tuple[float, list[WebhookEndpoint]] | None = None


def live_cached() -> list[WebhookEndpoint]:
    """Live endpoints as this process read them at most SUBSCRIBED_FOR_SECONDS ago."""
    global _live_cache
    now = time.monotonic()
    if _live_cache is None or now - _live_cache[0] > SUBSCRIBED_FOR_SECONDS:
        _live_cache = (now, live())
    return _live_cache[1]


def subscribed(type_: str) -> list[WebhookEndpoint]:
    """Live endpoints that receive messages of this type."""
    return [row for row in live_cached() if row.events is None or type_ in row.events]


def forget_subscriptions() -> None:
    """Read the endpoints afresh at the next `subscribed()` (after this process added or removed one)."""
    global _live_cache
    _live_cache = None


def find(endpoint_id: int) -> WebhookEndpoint | None:
    """A live endpoint by id, or None."""
    return WebhookEndpoint.get_or_none((WebhookEndpoint.id == endpoint_id) & WebhookEndpoint.removed_at.is_null())


def remove(endpoint_id: int) -> WebhookEndpoint | None:
    """Stop sending to an endpoint; what was still pending for it is marked failed. None: no such endpoint."""
    now = utcnow()
    with transaction():
        row = find(endpoint_id)
        if row is None:
            return None
        WebhookEndpoint.update(removed_at=now).where(WebhookEndpoint.id == row.id).execute()
        WebhookDelivery.update(status="failed", last_error="endpoint removed", updated_at=now, claimed_until=None).where(
            (WebhookDelivery.endpoint == row.id) & (WebhookDelivery.status == "pending")
        ).execute()
        row.removed_at = now
    forget_subscriptions()
    return row


def endpoint_to_dict(row: WebhookEndpoint) -> dict:
    """An endpoint as JSON, never with its secret."""
    return {"id": row.id, "url": row.url, "events": row.events or [], "created_at": iso(row.created_at),
            "removed_at": iso(row.removed_at)}
