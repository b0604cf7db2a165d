"""No Stripe request is made while the database's write lock is held.

On SQLite a write transaction locks the whole file, so a Stripe call inside one (up to the
client's timeout) would stall every webhook. The fake Stripe API checks, from the thread
serving each request, whether the test's database file is write-locked at that moment.
"""
from __future__ import annotations

import pytest

from app import db
from simulate import stripe_events as events
from tests.support.delivery import deliver
from tests.support.sqlite_lock import WriteLockProbe
from tests.support.stripe import completed, paid_subscription, stripe_webhook


@pytest.fixture
def env(env):
    # No sweeper re-sends: two runs of one event at once could lock the file for each other.
    return {**env, "SWEEP_AFTER": "3600"}


@pytest.fixture
def probe(database, stripe_api):
    if db.is_postgres():
        pytest.skip("only SQLite locks the whole database for a write")
    watching = WriteLockProbe(database.database)
    stripe_api.on_request = watching
    return watching


def test_the_probe_sees_a_stripe_call_made_inside_a_transaction(probe, stripe_api):
    stripe_api.put_subscription(subscription_id="sub_probe")
    with db.transaction():
        stripe_api.client().v1.subscriptions.retrieve("sub_probe")
    stripe_api.client().v1.subscriptions.retrieve("sub_probe")
    assert probe.seen == ["GET /v1/subscriptions/sub_probe"] * 2
    assert probe.locked == ["GET /v1/subscriptions/sub_probe"]


def test_stripe_handlers_call_stripe_only_outside_the_write_transaction(probe, client, worker, stripe_api, settings):
    session = paid_subscription(stripe_api, settings)
    intent = stripe_api.put_payment_intent()
    probe.clear()

    handled = [
        deliver(client, stripe_webhook(events.event("checkout.session.completed", session))).status,
        deliver(client, stripe_webhook(events.event("invoice.paid", stripe_api.invoices[session["invoice"]]))).status,
        deliver(client, stripe_webhook(events.event("customer.subscription.updated", stripe_api.subscriptions[session["subscription"]]))).status,
        deliver(client, stripe_webhook(completed(stripe_api=stripe_api, payment_intent=intent["id"]))).status,
        deliver(client, stripe_webhook(events.event("charge.dispute.created", events.dispute(charge=intent["latest_charge"], payment_intent=None)))).status,
    ]

    assert handled == ["processed"] * 5
    called = {line.split("/")[2] for line in probe.seen}
    assert {"invoices", "subscriptions", "charges"} <= called
    assert probe.locked == []
