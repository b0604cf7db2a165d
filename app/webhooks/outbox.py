"""The transactional outbox: a message is written in the same transaction as the change it reports.

`emit()` gives the message the user's next `sequence` and their whole current entitlement
summary, so a consumer can overwrite its copy with each message, and writes one delivery
per endpoint that receives the type. Workers send the deliveries (`app.webhooks.delivery`).
"""
from __future__ import annotations

import json
import uuid

import peewee

from app import holdings
from app.clock import iso, utcnow
from app.db import database
from app.models import User, WebhookDelivery, WebhookEndpoint, WebhookMessage, WebhookSequence
from app.webhooks import endpoints

PING = "ping"


class OutsideTransaction(RuntimeError):
    """`emit()` was called with no transaction open, so the message could outlive or miss its change."""


def emit(type_: str, user: User, data: dict | None = None, *, entitlement: str | None = None) -> WebhookMessage | None:
    """Write a message about `user` for every endpoint that receives `type_`; call it INSIDE the change's transaction.

    `data` adds to (or overrides) the computed `entitlement`, `active` and `expires_at`; `user`,
    `sequence` and `entitlements` are always the service's own. Returns None when no endpoint
    receives the type (nothing is written then).
    """
    if not database.in_transaction():
        raise OutsideTransaction("emit() must run inside the transaction of the change it reports")
    if type_ not in endpoints.EVENT_TYPES or type_ == PING:
        raise ValueError(f"unknown webhook type {type_!r}")
    targets = endpoints.subscribed(type_)
    if not targets:
        return None
    sequence = _next_sequence(user.id)
    message = _write(type_, user, sequence, _data(user, data or {}, entitlement, sequence))
    _deliver(message, targets)
    return message


def ping(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `ping` message for one endpoint, sent by the workers like any other (`webhooks test`)."""
    data = {"endpoint": endpoint.id, "user": None, "entitlement": None, "expires_at": None, "sequence": None,
            "entitlements": []}
    with database.atomic():
        message = _write(PING, None, None, data)
        return _deliver(message, [endpoint])[0]


def _data(user: User, extra: dict, entitlement: str | None, sequence: int) -> dict:
    holds = holdings.summary(user)
    held = next((h for h in holds if h["entitlement"] == entitlement), None)
    computed = {"entitlement": entitlement, "active": held is not None, "expires_at": held["expires_at"] if held else None}
    return {**computed, **extra, "user": user.telegram_id, "sequence": sequence, "entitlements": holds}


def _write(type_: str, user: User | None, sequence: int | None, data: dict) -> WebhookMessage:
    now = utcnow()
    body = json.dumps({"type": type_, "timestamp": now.isoformat() + "Z", "data": data}, separators=(",", ":"))
    return WebhookMessage.create(
        public_id=f"msg_{uuid.uuid4().hex}", type=type_, user=user, sequence=sequence, body=body, created_at=now
    )


def _deliver(message: WebhookMessage, targets: list[WebhookEndpoint]) -> list[WebhookDelivery]:
    now = utcnow()
    return [
        WebhookDelivery.create(
            message=message, endpoint=endpoint, user=message.user_id, sequence=message.sequence, next_attempt_at=now,
            created_at=now, updated_at=now,
        )
        for endpoint in targets
    ]


def _next_sequence(user_id: int) -> int:
    """The user's next sequence number; the counter row stays locked until the transaction ends, so numbers follow commit order."""
    if not _bump(user_id):
        try:
            with database.atomic():  # a savepoint: a racing first message makes this insert fail, not the caller
                WebhookSequence.insert(user=user_id, last=1).execute()
            return 1
        except peewee.IntegrityError:
            _bump(user_id)
    return WebhookSequence.get_by_id(user_id).last


def _bump(user_id: int) -> int:
    return WebhookSequence.update(last=WebhookSequence.last + 1).where(WebhookSequence.user == user_id).execute()
