"""Sending outgoing webhooks: claim a due delivery, POST it signed, record the outcome, schedule the retry.

Deliveries of one (endpoint, user) go strictly in `sequence` order: only the oldest pending
one is ever due, so a later message waits until an earlier one is delivered or has failed
for good. A claim is a conditional UPDATE, so several workers never send one attempt twice.
Endpoints are independent: deliveries are looked up per endpoint (one's backlog never hides
another's), and each attempt ends within `WEBHOOK_TIMEOUT` (`app.webhooks.transport`).
"""
from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import peewee
import requests

from app import metrics
from app.clock import iso, utcnow
from app.config import Settings
from app.db import connection, transaction
from app.models import User, WebhookDelivery, WebhookEndpoint, WebhookMessage
from app.webhooks import endpoints, signing, transport

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)
# A claim outlives the request's timeout by this much; a worker killed mid-attempt frees it after that.
LEASE_MARGIN_SECONDS = 30
BATCH = 32


@dataclass(frozen=True)
class Attempt:
    """One claimed attempt: what to send, where, and its number (1 for the first)."""

    delivery_id: int
    number: int
    url: str
    secret: str
    message_id: str
    body: str


@dataclass(frozen=True)
class Outcome:
    """What the endpoint answered: a status code, or the error that kept it from answering."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


def due(limit: int = BATCH, endpoint_id: int | None = None) -> list[int]:
    """Ids of deliveries (to one endpoint, or any) that may be attempted now: due, unclaimed, first in line for their user."""
    now = utcnow()
    earlier = WebhookDelivery.alias("earlier")
    ahead = earlier.select(earlier.id).where(
        (earlier.endpoint == WebhookDelivery.endpoint)
        & (earlier.user == WebhookDelivery.user)
        & (earlier.status == PENDING)
        & (earlier.sequence < WebhookDelivery.sequence)
    )
    query = (
        WebhookDelivery.select(WebhookDelivery.id)
        .join(WebhookEndpoint)
        .where(
            (WebhookDelivery.status == PENDING)
            & WebhookEndpoint.removed_at.is_null()  # written in the second a removal takes to reach every process
            & (WebhookDelivery.next_attempt_at <= now)
            & (WebhookDelivery.claimed_until.is_null() | (WebhookDelivery.claimed_until < now))
            & ~peewee.fn.EXISTS(ahead)
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)  # earliest due first, along the endpoint's index
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint == endpoint_id)
    return [row.id for row in query]


def claim(delivery_id: int, settings: Settings) -> Attempt | None:
    """Take the next attempt of a delivery for this worker, or None when it is not due or another worker has it."""
    now = utcnow()
    lease = now + timedelta(seconds=settings.webhook_timeout + LEASE_MARGIN_SECONDS)
    with transaction():
        taken = WebhookDelivery.update(
            claimed_until=lease, attempts=WebhookDelivery.attempts + 1, updated_at=now
        ).where(
            (WebhookDelivery.id == delivery_id)
            & (WebhookDelivery.status == PENDING)
            & (WebhookDelivery.next_attempt_at <= now)
            & (WebhookDelivery.claimed_until.is_null() | (WebhookDelivery.claimed_until < now))
            & WebhookDelivery.endpoint.in_(WebhookEndpoint.select(WebhookEndpoint.id).where(WebhookEndpoint.removed_at.is_null()))
        ).execute()
        if not taken:
            return None
        row = (
            WebhookDelivery.select(WebhookDelivery, WebhookMessage, WebhookEndpoint)
            .join(WebhookMessage).switch(WebhookDelivery).join(WebhookEndpoint)
            .where(WebhookDelivery.id == delivery_id).get()
        )
    return Attempt(row.id, row.attempts, row.endpoint.url, row.endpoint.secret, row.message.public_id, row.message.body)


def send(attempt: Attempt, timeout: float) -> Outcome:
    """POST one signed attempt, ended within `timeout` whatever the endpoint does; a 3xx is a failed attempt."""
    headers = signing.headers(attempt.secret, attempt.message_id, int(time.time()), attempt.body)
    try:
        status = transport.post_status(attempt.url, attempt.body.encode(), headers, timeout)
    except requests.Timeout:
        return Outcome(None, f"no answer within {timeout:g}s")
    except requests.RequestException as exc:
        return Outcome(None, f"{type(exc).__name__}: could not reach the endpoint")
    if 200 <= status < 300:
        return Outcome(status, None)
    if 300 <= status < 400:
        return Outcome(status, f"HTTP {status} (redirects are not followed)")
    return Outcome(status, f"HTTP {status}")


def record(attempt: Attempt, outcome: Outcome, schedule: tuple[float, ...]) -> str:
    """Store an attempt's outcome: delivered, or the next attempt's time, or failed once the schedule is spent."""
    now = utcnow()
    changes = {"claimed_until": None, "updated_at": now, "last_status": outcome.status, "last_error": outcome.error}
    if outcome.ok:
        result = DELIVERED
        changes.update(status=DELIVERED, delivered_at=now)
    elif attempt.number > len(schedule):
        result = FAILED
        changes.update(status=FAILED)
    else:
        result = "retrying"
        changes.update(next_attempt_at=now + timedelta(seconds=schedule[attempt.number - 1]))
    with transaction():
        WebhookDelivery.update(**changes).where(
            (WebhookDelivery.id == attempt.delivery_id) & (WebhookDelivery.attempts == attempt.number)
            & (WebhookDelivery.status == PENDING)
        ).execute()
    metrics.webhook_deliveries.labels(result=result).inc()
    log.info(
        "webhook delivery %s attempt %d to %s: %s%s", attempt.delivery_id, attempt.number, endpoints.safe_url(attempt.url),
        outcome.status if outcome.status is not None else "no answer", f" ({outcome.error}); {result}" if not outcome.ok else "",
    )
    return result


def attempt_now(delivery_id: int, settings: Settings) -> str | None:
    """Claim, send and record one attempt in this thread; its result, or None when it was not due or taken elsewhere."""
    with connection():
        attempt = claim(delivery_id, settings)
    if attempt is None:
        return None
    outcome = send(attempt, settings.webhook_timeout)
    with connection():
        return record(attempt, outcome, settings.webhook_retry_schedule)


def pump_once(settings: Settings) -> int:
    """Attempt, in this thread, every delivery due now, taking the endpoints in turn; returns how many were attempted."""
    with connection():
        lines = [due(BATCH, endpoint.id) for endpoint in endpoints.live()]
    in_turn = [i for round_ in itertools.zip_longest(*lines) for i in round_ if i is not None]
    return sum(attempt_now(i, settings) is not None for i in in_turn)


def redeliver(delivery_ids: list[int]) -> list[WebhookDelivery]:
    """Put deliveries to live endpoints back in line with a fresh schedule (the same `webhook-id`); returns those found."""
    now = utcnow()
    with transaction():
        rows = list(
            WebhookDelivery.select().join(WebhookEndpoint)
            .where(WebhookDelivery.id.in_(delivery_ids) & WebhookEndpoint.removed_at.is_null())
        )
        _requeue([row.id for row in rows], now)
    return rows


def redeliver_failed() -> int:
    """Put every failed delivery to a live endpoint back in line; returns how many."""
    now = utcnow()
    with transaction():
        ids = [
            row.id for row in WebhookDelivery.select(WebhookDelivery.id).join(WebhookEndpoint)
            .where((WebhookDelivery.status == FAILED) & WebhookEndpoint.removed_at.is_null())
        ]
        _requeue(ids, now)
    return len(ids)


def _requeue(ids: list[int], now) -> None:
    if ids:
        WebhookDelivery.update(
            status=PENDING, attempts=0, next_attempt_at=now, delivered_at=None, updated_at=now
        ).where(WebhookDelivery.id.in_(ids)).execute()


def list_deliveries(
    endpoint_id: int | None = None, status: str | None = None, telegram_id: int | None = None, limit: int | None = 100
) -> list[WebhookDelivery]:
    """Deliveries, newest first, with their message and endpoint."""
    query = _joined()
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint == endpoint_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    if telegram_id is not None:
        query = query.where(WebhookDelivery.user.in_(User.select(User.id).where(User.telegram_id == telegram_id)))
    if limit:
        query = query.limit(limit)
    return list(query)


def find(delivery_id: int) -> WebhookDelivery | None:
    """One delivery by id, with its message and endpoint, or None."""
    return _joined().where(WebhookDelivery.id == delivery_id).first()


def _joined():
    return (
        WebhookDelivery.select(WebhookDelivery, WebhookMessage, WebhookEndpoint, User)
        .join(WebhookMessage).switch(WebhookDelivery).join(WebhookEndpoint).switch(WebhookDelivery)
        .join(User, peewee.JOIN.LEFT_OUTER, on=(WebhookDelivery.user == User.id))
        .order_by(WebhookDelivery.id.desc())
    )


def delivery_to_dict(row: WebhookDelivery) -> dict:
    """A delivery as JSON (never the endpoint's secret)."""
    message = row.message
    return {
        "id": row.id, "endpoint": row.endpoint_id, "url": row.endpoint.url, "message_id": message.public_id,
        "type": message.type, "user": row.user.telegram_id if row.user_id is not None else None, "sequence": row.sequence, "status": row.status,
        "attempts": row.attempts, "last_status": row.last_status, "last_error": row.last_error,
        "created_at": iso(row.created_at), "next_attempt_at": iso(row.next_attempt_at) if row.status == PENDING else None,
        "delivered_at": iso(row.delivered_at),
    }
