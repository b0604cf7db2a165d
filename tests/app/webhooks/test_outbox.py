"""The outbox: a message is written in the transaction of the change it reports, with the user's next sequence."""
from __future__ import annotations

import json
import threading

import pytest

from app import entitlements, users
from app.db import connection, transaction
from app.models import WebhookDelivery, WebhookMessage
from app.webhooks import endpoints, outbox
from tests.support.webhook_receiver import PAYMENT_TYPES


def _bodies() -> list[dict]:
    return [json.loads(row.body) for row in WebhookMessage.select().order_by(WebhookMessage.id)]


def test_a_payment_writes_one_delivery_per_endpoint_that_takes_its_type(database):
    every = endpoints.add("https://backend.example/hooks", list(PAYMENT_TYPES))
    refunds_only = endpoints.add("https://backend.example/refunds", ["payment.refunded"])
    user = users.ensure_user(7001, first_name="Ada")

    entitlements.grant(user, "premium", source="telegram", reference="charge-1", days=30, plan="premium_month",
                       detail={"amount": 250, "currency": "XTR"})

    [message] = _bodies()
    assert message["type"] == "payment.succeeded"
    data = message["data"]
    assert data["user"] == 7001 and data["sequence"] == 1 and data["entitlement"] == "premium"
    assert data["active"] is True and data["expires_at"] == entitlements.summary(user)[0]["expires_at"]
    assert data["entitlements"] == entitlements.summary(user)
    assert (data["source"], data["reference"], data["amount"], data["currency"]) == ("telegram", "charge-1", 250, "XTR")
    assert [d.endpoint_id for d in WebhookDelivery.select()] == [every.row.id]

    entitlements.revoke_payment("telegram", "charge-1", reason="refund", actor="operator")

    refunded = _bodies()[-1]
    assert refunded["type"] == "payment.refunded"
    assert refunded["data"]["reason"] == "refunded" and refunded["data"]["sequence"] == 2
    assert refunded["data"]["active"] is False and refunded["data"]["entitlements"] == []
    assert sorted(d.endpoint_id for d in WebhookDelivery.select()) == [every.row.id, every.row.id, refunds_only.row.id]


def test_a_change_that_rolls_back_leaves_no_message(database):
    endpoints.add("https://backend.example/hooks")
    user = users.ensure_user(7002)

    with pytest.raises(RuntimeError):
        with transaction():
            entitlements.grant(user, "premium", source="stripe", reference="pi_1", days=30)
            raise RuntimeError("the caller's transaction fails after the grant")

    assert WebhookMessage.select().count() == 0 and WebhookDelivery.select().count() == 0


def test_emit_outside_a_transaction_is_refused(database):
    endpoints.add("https://backend.example/hooks")
    user = users.ensure_user(7003)

    with pytest.raises(outbox.OutsideTransaction):
        outbox.emit("entitlement.started", user, {}, entitlement="premium")
    with transaction():
        assert outbox.emit("entitlement.started", user, {}, entitlement="premium") is not None


def test_without_endpoints_and_for_manual_grants_nothing_is_written(database):
    user = users.ensure_user(7004)
    entitlements.grant(user, "premium", source="telegram", reference="charge-2", days=7)
    assert WebhookMessage.select().count() == 0

    endpoints.add("https://backend.example/hooks", ["payment.succeeded"])
    entitlements.grant_manually(user, "premium", days=1)
    assert WebhookMessage.select().count() == 0


def test_concurrent_payments_of_one_user_get_distinct_increasing_sequences(database):
    endpoints.add("https://backend.example/hooks")
    user = users.ensure_user(7005)
    errors = []

    def pay(n: int) -> None:
        try:
            with connection():
                entitlements.grant(user, "premium", source="stripe", reference=f"pi_{n}", days=1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    rows = list(WebhookMessage.select().order_by(WebhookMessage.id))
    # Eight payments and their eight transitions (one start, seven extensions) share the user's sequence.
    assert sorted(r.sequence for r in rows) == list(range(1, 17))
    assert sorted(r.type for r in rows) == ["entitlement.extended"] * 7 + ["entitlement.started"] + ["payment.succeeded"] * 8
    # Sequence follows commit order, so the message numbered last carries the final summary.
    last = json.loads(max(rows, key=lambda r: r.sequence).body)
    assert last["data"]["entitlements"] == entitlements.summary(user)


def test_an_endpoint_removed_by_another_process_gets_nothing_more(database):
    from app.clock import utcnow
    from app.models import WebhookEndpoint
    from app.webhooks import delivery

    added = endpoints.add("https://backend.example/hooks", list(PAYMENT_TYPES))
    assert endpoints.subscribed("payment.succeeded")  # this process has the endpoints in hand now
    # Another process removes it; this one still holds the list it read a moment ago.
    WebhookEndpoint.update(removed_at=utcnow()).where(WebhookEndpoint.id == added.row.id).execute()

    user = users.ensure_user(7006)
    entitlements.grant(user, "premium", source="telegram", reference="charge-after-removal", days=1)

    assert delivery.due() == []
