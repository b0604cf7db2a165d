"""A test provider's handler table: `testpay` `slow_paid` grants `premium`, slowly, so a test can kill a worker mid-message.

`TABLES` is the providers' tables plus this one; `tests.support.slow_worker` is the module
worker processes started by tests run (`dramatiq tests.support.slow_worker`).
"""
from __future__ import annotations

import time

from app import entitlements, inbox, users
from workers.runtime import PROVIDER_TABLES


def slow_paid(event, context):
    """Grant after a pause that keeps the transaction open."""
    user = users.ensure_user(event.payload["user"])
    time.sleep(float(event.payload.get("sleep", 0.2)))
    entitlements.grant(user, "premium", source="testpay", reference=event.external_id, days=30)


TABLES = {**PROVIDER_TABLES, "testpay": {"slow_paid": inbox.handler(slow_paid)}}
