"""A card payment's Stripe read-back runs before its transaction: the claim and the grant are one transaction after it.

Given a `checkout.session.completed` webhook accepted by the app and its message run as the actor runs it
(with what the message carries, `Runtime.message_options`), when Stripe fails the read-back, then the row
stays pending with its attempt counted and nothing granted, the next message grants once, and a copy of
the message after that grants nothing more.
"""
from __future__ import annotations

import pytest

from app import users
from app.models import Event, Grant
from app.stripe.client import DEFAULT_MAX_NETWORK_RETRIES
from app.stripe.handlers import StripeUnavailable
from tests.support.delivery import recorded_row
from tests.support.stripe import completed, stripe_webhook


def run(runtime, row: Event) -> str:
    """Process the row's current message as its actor does."""
    current = Event.get_by_id(row.id)
    return runtime.process(current.id, current.dispatch, **runtime.message_options(current.provider, current.type))


def test_a_read_back_that_fails_leaves_the_row_pending_and_the_retry_grants_once(client, runtime, broker, stripe_api):
    assert runtime.message_options("stripe", "checkout.session.completed") == {"prepare_first": True}
    assert runtime.message_options("telegram", "successful_payment") == {}
    webhook = stripe_webhook(completed(stripe_api=stripe_api))
    answer = webhook.post(client)
    assert answer.status_code == 200
    row = recorded_row("stripe", answer.get_json())
    stripe_api.fail("GET", "/v1/checkout/sessions", status=500, message="Stripe is having a moment",
                    times=1 + DEFAULT_MAX_NETWORK_RETRIES)

    with pytest.raises(StripeUnavailable):
        run(runtime, row)
    failed = Event.get_by_id(row.id)
    assert (failed.status, failed.attempts, failed.started_at) == ("pending", 1, None) and "HTTP 500" in failed.error
    assert Grant.select().count() == 0 and users.find_user(42) is None  # nothing of the payment's transaction was written

    assert run(runtime, row) == "processed"
    assert run(runtime, row) == "processed"  # a copy of the message
    [grant] = Grant.select()
    assert grant.user.telegram_id == 42 and Event.get_by_id(row.id).attempts == 2
