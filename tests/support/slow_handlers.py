"""A test provider's handler for worker processes started by tests (`dramatiq workers tests.support.slow_handlers`).

It grants `premium` for each `testpay` `slow_paid` event, slowly, so a test can kill a worker mid-message.
"""
from __future__ import annotations

import time

from app import entitlements, inbox, users


@inbox.handles("testpay", "slow_paid")
def slow_paid(event):
    """Grant after a pause that keeps the transaction open."""
    user = users.ensure_user(event.payload["user"])
    time.sleep(float(event.payload.get("sleep", 0.2)))
    entitlements.grant(user, "premium", source="testpay", reference=event.external_id, days=30)
