"""Every real payment webhook delivered 5 times at the same moment: one row and one grant each."""
from __future__ import annotations

from tests.support.chaos import all_granted, clean, deliver_concurrently, payments_for, tally
from tests.support.waiting import wait_for


def test_twelve_payments_each_delivered_five_times_concurrently_are_granted_once_each(app, live_server, worker, stripe_api):
    # Given signed Stars and Stripe payment webhooks for twelve payers
    deliveries = payments_for(app, 12, first_user=41_000_000, stripe_api=stripe_api)

    # When each is delivered five times at the same moment
    statuses = deliver_concurrently(live_server, deliveries, copies=5)

    # Then every delivery is accepted and, once the worker is done, each payment is granted exactly once
    assert statuses == [200] * 12
    wait_for(lambda: all_granted(deliveries), timeout=30, message="every payment granted")
    worker.join()
    assert tally(deliveries, statuses) == clean(12)
