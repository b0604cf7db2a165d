"""How each live endpoint is doing: deliveries failing (waiting for a retry after a failed attempt) or late (due, unsent).

Read from the deliveries table, so every host's `entitle status` and `/metrics` say the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import peewee
from prometheus_client.core import GaugeMetricFamily

from app.clock import utcnow
from app.models import WebhookDelivery
from app.webhooks import endpoints


@dataclass(frozen=True)
class EndpointHealth:
    """One live endpoint: its pending deliveries, how many of them failed their last attempt, and the oldest due one's age."""

    id: int
    url: str
    pending: int
    retrying: int
    oldest_due_seconds: float
    last_error: str | None
    late_after: float

    @property
    def failing(self) -> bool:
        """Some delivery's last attempt failed and waits for its retry."""
        return self.retrying > 0

    @property
    def late(self) -> bool:
        """A delivery has been due, unsent, for longer than `WEBHOOK_LATE_AFTER`."""
        return self.oldest_due_seconds > self.late_after

    @property
    def state(self) -> str:
        """`failing`, `late`, `failing, late` or `ok`."""
        return ", ".join(name for name, on in (("failing", self.failing), ("late", self.late)) if on) or "ok"

    def to_dict(self) -> dict:
        """For `status --json`."""
        return {"id": self.id, "url": self.url, "state": self.state, "pending": self.pending, "retrying": self.retrying,
                "oldest_due_seconds": round(self.oldest_due_seconds, 1), "last_error": self.last_error}


def report(late_after: float) -> list[EndpointHealth]:
    """Every live endpoint's health, oldest endpoint first."""
    now = utcnow()
    is_retrying = peewee.Case(None, [(WebhookDelivery.last_error.is_null(False), 1)], 0)
    due_at = peewee.Case(None, [(WebhookDelivery.next_attempt_at <= now, WebhookDelivery.next_attempt_at)], None)
    rows = (
        WebhookDelivery.select(
            WebhookDelivery.endpoint, peewee.fn.COUNT(WebhookDelivery.id), peewee.fn.SUM(is_retrying), peewee.fn.MIN(due_at)
        )
        .where(WebhookDelivery.status == "pending")
        .group_by(WebhookDelivery.endpoint)
        .tuples()
    )
    pending = {endpoint_id: (count, int(retrying or 0), _as_datetime(oldest)) for endpoint_id, count, retrying, oldest in rows}
    found = []
    for endpoint in endpoints.live():
        count, retrying, oldest = pending.get(endpoint.id, (0, 0, None))
        age = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
        found.append(EndpointHealth(endpoint.id, endpoints.safe_url(endpoint.url), count, retrying, age,
                                    _last_error(endpoint.id) if retrying else None, late_after))
    return found


def _last_error(endpoint_id: int) -> str | None:
    row = (
        WebhookDelivery.select(WebhookDelivery.last_error)
        .where((WebhookDelivery.endpoint == endpoint_id) & (WebhookDelivery.status == "pending")
               & WebhookDelivery.last_error.is_null(False))
        .order_by(WebhookDelivery.updated_at.desc())
        .first()
    )
    return row.last_error if row else None


def _as_datetime(value):
    """SQLite hands an aggregate of a datetime column back as text."""
    if value is None or not isinstance(value, str):
        return value
    return WebhookDelivery.next_attempt_at.python_value(value)


def families(late_after: float) -> list[GaugeMetricFamily]:
    """`webhook_endpoint_failing{endpoint}` (1 or 0) and `webhook_endpoint_oldest_due_seconds{endpoint}`, one sample per live endpoint."""
    failing = GaugeMetricFamily(
        "webhook_endpoint_failing", "1 when an endpoint's deliveries are failing (retrying after a failed attempt).", labels=["endpoint"]
    )
    oldest = GaugeMetricFamily(
        "webhook_endpoint_oldest_due_seconds", "Age of an endpoint's oldest delivery that is due and unsent.", labels=["endpoint"]
    )
    for health in report(late_after):
        failing.add_metric([str(health.id)], 1.0 if health.failing else 0.0)
        oldest.add_metric([str(health.id)], health.oldest_due_seconds)
    return [failing, oldest]
