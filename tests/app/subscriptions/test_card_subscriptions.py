"""Card subscriptions' states as Stripe has them, whatever order its signed events arrive in, with a real worker."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from app import entitlements
from app.clock import from_timestamp
from app.models import Grant, Subscription
from tests.support.delivery import deliver
from tests.support.stripe import stripe_env, stripe_webhook
from tests.support.subscriptions import CardSubscription, in_seconds

DAY = 86400
_ids = itertools.count(5300)


@pytest.fixture
def env(env, stripe_api):
    """The subscriptions' environment plus the Stripe stand-in."""
    return {**env, **stripe_env(stripe_api)}


def _deliver_all(client, events: list[dict]) -> None:
    for event in events:
        row = deliver(client, stripe_webhook(event))
        assert row.status == "processed", (event["type"], row.error)


def _record(sub: CardSubscription) -> Subscription:
    return Subscription.get(Subscription.key == sub.id)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_cancel_in_the_customer_portal_makes_it_canceled_in_any_order_of_events(client, worker, stripe_api, order):
    sub = CardSubscription(stripe_api, next(_ids))
    start, end = in_seconds(-DAY), in_seconds(29 * DAY)
    created = sub.state(start, end, status="incomplete")
    paid = sub.invoice(created, start, end)
    final = sub.state(start, end, cancel_at_period_end=True)  # the payer canceled in the portal
    sent = [
        sub.event("customer.subscription.created", created),
        sub.event("invoice.paid", paid),
        sub.event("customer.subscription.updated", final, previous_attributes={"cancel_at_period_end": False}),
    ]

    _deliver_all(client, [sent[i] for i in order])

    record = _record(sub)
    assert (record.state, record.canceled_by, record.period_end) == ("canceled", "payer", from_timestamp(int(end)))
    assert entitlements.end_for(sub.telegram_id, "premium") == from_timestamp(int(end))  # paid to the period end


def test_a_failed_renewal_is_past_due_with_the_plans_grace_from_the_paid_periods_end(client, worker, stripe_api):
    sub = CardSubscription(stripe_api, next(_ids))
    start, end = in_seconds(-30 * DAY), in_seconds(5)
    first = sub.state(start, end)
    _deliver_all(client, [sub.event("invoice.paid", sub.invoice(first, start, end))])
    overdue = sub.state(end, end + 30 * DAY, status="past_due")
    failed = sub.invoice(overdue, end, end + 30 * DAY, paid=False)

    _deliver_all(client, [sub.event("invoice.payment_failed", failed)])

    record = _record(sub)
    grace_end = from_timestamp(int(end)) + timedelta(days=0.0001)
    assert (record.state, record.grace_until) == ("past_due", grace_end)
    grace = Grant.get(Grant.source == "grace")
    assert (grace.ends_at, grace.subscription_id) == (grace_end, sub.id)
    assert entitlements.end_for(sub.telegram_id, "premium") == grace_end


@pytest.mark.parametrize("failure_first", [True, False])
def test_a_retry_that_succeeded_leaves_it_active_without_grace_in_either_order(client, worker, stripe_api, failure_first):
    sub = CardSubscription(stripe_api, next(_ids))
    start, end = in_seconds(-30 * DAY), in_seconds(60)
    first = sub.state(start, end)
    _deliver_all(client, [sub.event("invoice.paid", sub.invoice(first, start, end))])
    renewed = sub.state(end, end + 30 * DAY)  # Stripe's retry was paid: active again
    second = sub.invoice(renewed, end, end + 30 * DAY)
    failed = dict(second, status="open", attempt_count=1)
    events = [sub.event("invoice.payment_failed", failed), sub.event("invoice.paid", second)]

    _deliver_all(client, events if failure_first else events[::-1])

    assert _record(sub).state == "active"
    assert Grant.select().where((Grant.source == "grace") & Grant.revoked_at.is_null()).count() == 0
    assert entitlements.end_for(sub.telegram_id, "premium") == from_timestamp(int(end + 30 * DAY))


def test_a_subscription_stripe_ended_is_ended_here_and_its_later_periods_revoked(client, worker, stripe_api):
    sub = CardSubscription(stripe_api, next(_ids))
    start, end = in_seconds(-DAY), in_seconds(29 * DAY)
    active = sub.state(start, end)
    _deliver_all(client, [sub.event("invoice.paid", sub.invoice(active, start, end))])
    gone = sub.state(start, end, status="canceled", canceled_at=int(in_seconds(0)), ended_at=int(in_seconds(0)))

    _deliver_all(client, [sub.event("customer.subscription.deleted", gone)])

    record = _record(sub)
    assert (record.state, record.end_reason) == ("ended", "canceled")
    assert entitlements.end_for(sub.telegram_id, "premium") is None
