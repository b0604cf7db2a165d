"""One Stripe customer per user: created on first need, remembered, never duplicated by a race."""
from __future__ import annotations

import threading

from app import users
from app.stripe.customers import ensure_customer


def test_the_first_need_creates_a_customer_naming_the_telegram_user(database, stripe_api):
    user = users.ensure_user(42, first_name="Ada")
    customer_id = ensure_customer(stripe_api.client(), user)

    [call] = stripe_api.calls_to("POST", "/v1/customers")
    assert call.params["metadata"] == {"telegram_user_id": "42"}
    assert call.headers["Idempotency-Key"] == "customer-42"
    assert stripe_api.customers[customer_id]["metadata"] == {"telegram_user_id": "42"}
    assert users.find_user(42).stripe_customer_id == customer_id


def test_a_known_customer_is_reused_without_asking_stripe(database, stripe_api):
    user = users.ensure_user(42)
    first = ensure_customer(stripe_api.client(), user)
    again = ensure_customer(stripe_api.client(), users.find_user(42))
    assert again == first
    assert len(stripe_api.calls_to("POST", "/v1/customers")) == 1


def test_racing_first_needs_create_one_customer(database, stripe_api):
    users.ensure_user(7)
    barrier = threading.Barrier(6)
    found: list[str] = []

    def need():
        barrier.wait()
        found.append(ensure_customer(stripe_api.client(), users.find_user(7)))

    threads = [threading.Thread(target=need) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(set(found)) == 1 and len(found) == 6
    assert list(stripe_api.customers) == found[:1]
    assert users.find_user(7).stripe_customer_id == found[0]
