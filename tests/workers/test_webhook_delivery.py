"""Outgoing webhooks at the wire: a real receiver verifies each message with `standardwebhooks`.

The worker is a real Dramatiq worker on Redis (its outbox pump sends); where a test needs
exact control it calls the pump itself, as a worker does.
"""
from __future__ import annotations

import dataclasses
import json
import threading
from collections import defaultdict

import pytest
from prometheus_client import REGISTRY

from app import entitlements, users
from app.models import WebhookDelivery
from app.webhooks import delivery
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import FAST_WEBHOOKS, PAYMENT_TYPES, add_endpoint


@pytest.fixture
def env(env):
    """The suite's environment with fast webhook retries."""
    return {**env, **FAST_WEBHOOKS}


def _counted(result: str) -> float:
    return REGISTRY.get_sample_value("webhook_deliveries_total", {"result": result}) or 0.0


def _statuses() -> list[str]:
    return [row.status for row in WebhookDelivery.select().order_by(WebhookDelivery.id)]


def _pay_and_refund(alice, bob) -> None:
    """Several payments and refunds of two users, interleaved."""
    entitlements.grant(alice, "premium", source="telegram", reference="charge-a1", days=7, plan="premium_week")
    entitlements.grant(bob, "premium", source="stripe", reference="pi_b1", days=30, plan="premium_month")
    entitlements.grant(alice, "premium", source="stripe", reference="pi_a2", days=30, plan="premium_month")
    entitlements.revoke_payment("telegram", "charge-a1", reason="refund", actor="operator")
    entitlements.grant(alice, "supporter", source="telegram", reference="charge-a3", days=None)
    entitlements.revoke_payment("stripe", "pi_b1", reason="dispute", actor="stripe")


def test_an_endpoint_down_for_a_while_gets_every_message_once_in_order_with_the_final_state(cli, worker, receiver):
    add_endpoint(cli, receiver)
    receiver.down = True
    delivered, retried = _counted("delivered"), _counted("retrying")
    alice, bob = users.ensure_user(8101, first_name="Alice"), users.ensure_user(8102, first_name="Bob")

    _pay_and_refund(alice, bob)
    wait_for(lambda: len(receiver.requests) >= 8, message="several attempts against the endpoint while it is down")
    receiver.down = False
    wait_for(lambda: _statuses() and all(s == "delivered" for s in _statuses()), message="every delivery delivered")

    assert all(r.verified for r in receiver.requests), "the reference library accepts every attempt"
    assert {r.headers["user-agent"] for r in receiver.requests} == {"entitle-webhooks/1"}, "entitle says who sends, not python-requests"
    by_user = defaultdict(list)
    for message in receiver.accepted:
        by_user[message["data"]["user"]].append(message)
    assert [m["data"]["sequence"] for m in by_user[8101]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [m["data"]["sequence"] for m in by_user[8102]] == [1, 2, 3, 4]
    assert [m["type"] for m in by_user[8101]] == [
        "payment.succeeded", "entitlement.started",  # a week of premium
        "payment.succeeded", "entitlement.extended",  # a month stacked after it
        "entitlement.extended", "payment.refunded",  # the week refunded: the month moves forward
        "payment.succeeded", "entitlement.started",  # supporter for good
    ]
    assert [(m["type"], m["data"].get("reason")) for m in by_user[8102]] == [
        ("payment.succeeded", None), ("entitlement.started", None), ("entitlement.ended", "disputed"), ("payment.refunded", "disputed"),
    ]
    assert by_user[8101][-1]["data"]["entitlements"] == entitlements.summary(alice)
    assert by_user[8102][-1]["data"]["entitlements"] == entitlements.summary(bob) == []
    ids = [r.headers["webhook-id"] for r in receiver.requests if r.answered == 200]
    assert len(ids) == len(set(ids)) == 12, "each message accepted once"
    # While the endpoint was down, a user's later message never went before an earlier one was delivered.
    for user in (8101, 8102):
        seen = [r.message["data"]["sequence"] for r in receiver.requests if r.message["data"]["user"] == user]
        assert seen == sorted(seen)
    # A retry carries the same webhook-id as the first attempt.
    first = receiver.requests[0]
    assert first.answered == 500 and first.headers["webhook-id"] in ids
    assert _counted("delivered") == delivered + 12 and _counted("retrying") > retried


def test_an_event_filter_sends_only_the_types_asked_for(cli, worker, receiver):
    add_endpoint(cli, receiver, "payment.refunded")
    user = users.ensure_user(8103)

    entitlements.grant(user, "premium", source="telegram", reference="charge-f1", days=7)
    entitlements.revoke_payment("telegram", "charge-f1", reason="refund", actor="operator")
    wait_for(lambda: receiver.accepted, message="the refund message")

    assert [m["type"] for m in receiver.accepted] == ["payment.refunded"]
    assert receiver.accepted[0]["data"]["reason"] == "refunded" and receiver.accepted[0]["data"]["sequence"] == 1


def _pump_until_settled(settings, rounds: int = 200) -> None:
    for _ in range(rounds):
        delivery.pump_once(settings)
        if all(s != "pending" for s in _statuses()):
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"deliveries still pending: {_statuses()}")


def test_a_delivery_that_fails_for_good_lets_the_next_go_and_redeliver_sends_it_again(cli, receiver, settings):
    settings = dataclasses.replace(settings, webhook_retry_schedule=(0.0, 0.0))  # three attempts, at once
    add_endpoint(cli, receiver, "payment.succeeded")
    receiver.failures_left = 3
    failed = _counted("failed")
    user = users.ensure_user(8104)

    entitlements.grant(user, "premium", source="telegram", reference="charge-x1", days=7)
    entitlements.grant(user, "premium", source="telegram", reference="charge-x2", days=7)
    _pump_until_settled(settings)

    assert _statuses() == ["failed", "delivered"]
    assert [r.answered for r in receiver.requests] == [500, 500, 500, 200]
    assert _counted("failed") == failed + 1
    listed = cli("webhooks", "deliveries", "--status", "failed", "--json")
    assert listed.exit_code == 0
    [row] = json.loads(listed.stdout)
    assert (row["attempts"], row["last_status"], row["last_error"], row["sequence"]) == (3, 500, "HTTP 500", 1)

    again = cli("webhooks", "redeliver", "--failed")
    assert again.exit_code == 0 and "1 failed delivery queued again" in again.stdout
    _pump_until_settled(settings)

    assert _statuses() == ["delivered", "delivered"]
    assert receiver.requests[-1].headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]
    assert receiver.requests[-1].message["data"]["sequence"] == 1


def test_a_timeout_is_a_failed_attempt_and_is_retried(cli, receiver, settings):
    add_endpoint(cli, receiver, "payment.succeeded")
    receiver.delay = settings.webhook_timeout + 0.5
    user = users.ensure_user(8105)
    entitlements.grant(user, "premium", source="stripe", reference="pi_t1", days=7)

    assert delivery.pump_once(settings) == 1

    row = WebhookDelivery.get()
    assert (row.status, row.attempts, row.last_status) == ("pending", 1, None)
    assert row.last_error == f"no answer within {settings.webhook_timeout:g}s"
    receiver.delay = 0
    wait_for(lambda: delivery.pump_once(settings) and WebhookDelivery.get().status == "delivered", message="the retry")


def test_a_redirect_is_not_followed(cli, receiver, settings):
    add_endpoint(cli, receiver, *PAYMENT_TYPES)
    receiver.redirect_to = receiver.url.replace("/hooks", "/elsewhere")
    user = users.ensure_user(8106)
    entitlements.grant(user, "premium", source="stripe", reference="pi_r1", days=7)

    delivery.pump_once(settings)

    row = WebhookDelivery.get()
    assert (row.status, row.last_status, row.last_error) == ("pending", 302, "HTTP 302 (redirects are not followed)")
    assert [r.path for r in receiver.requests] == ["/hooks"]


def test_pumps_running_at_once_never_send_one_attempt_twice(cli, receiver, settings):
    add_endpoint(cli, receiver, *PAYMENT_TYPES)
    for n in range(12):
        entitlements.grant(users.ensure_user(8200 + n), "premium", source="stripe", reference=f"pi_c{n}", days=7)

    pumps = [threading.Thread(target=_pump_until_settled, args=(settings,)) for _ in range(4)]
    for pump in pumps:
        pump.start()
    for pump in pumps:
        pump.join()

    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 12
    assert set(_statuses()) == {"delivered"}
