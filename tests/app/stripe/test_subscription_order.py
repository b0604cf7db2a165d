"""A subscription's events, delivered in any order, leave the same grants.

Stripe does not promise delivery order. Given the subscription as Stripe has it at the end
(active after a renewal, or canceled in one of several ways) and the events it sent on the way,
every permutation of those events ends in the one state that final subscription implies.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import entitlements, users
from app.clock import from_timestamp
from app.models import Grant
from simulate import stripe_events as events
from tests.support.delivery import deliver
from tests.support.stripe import now, stripe_webhook

DAY = 86400
PRICE = events.price(price_id="price_premium_month", interval="month")
_telegram_ids = itertools.count(610_000)


@dataclass
class World:
    telegram_id: int
    events: list[dict]
    # payment reference -> (grant end, revoke reason or None)
    expected: dict[str, tuple[int, str | None]]
    active_until: int | None


def _subscription(sub_id, customer, metadata, start, end, status="active", **fields) -> dict:
    return events.subscription(
        subscription_id=sub_id, customer=customer, price=PRICE, metadata=metadata,
        current_period_start=start, current_period_end=end, status=status, created=start, **fields,
    )


def _invoice(stripe_api, sub: dict, metadata: dict, start: int, end: int, reason: str) -> tuple[dict, str]:
    payment = events.new_id("pi")
    invoice = events.invoice(
        customer=sub["customer"], subscription=sub["id"], subscription_item=sub["items"]["data"][0]["id"],
        subscription_metadata=metadata, price=PRICE, billing_reason=reason, period_start=start, period_end=end,
        payment_intent=payment, created=start,
    )
    stripe_api.put_invoice(invoice)
    invoice.pop("payments")  # webhook payloads carry no payments; the handler reads them back
    return invoice, payment


def build(stripe_api, scenario: str) -> World:
    """Put the final subscription and its invoices in the fake; return the events Stripe sent on the way."""
    t = now()
    telegram_id = next(_telegram_ids)
    customer = stripe_api.put_customer(metadata={"telegram_user_id": str(telegram_id)})["id"]
    sub_id = events.new_id("sub")
    metadata = {"telegram_user_id": str(telegram_id), "plan": "premium_month"}
    p1, p2 = (t - 40 * DAY, t - 10 * DAY), (t - 10 * DAY, t + 20 * DAY)

    first = _subscription(sub_id, customer, metadata, *p1, status="incomplete")
    inv1, pi1 = _invoice(stripe_api, first, metadata, *p1, "subscription_create")
    sent = [events.event("customer.subscription.created", first), events.event("invoice.paid", inv1)]

    if scenario == "active after a renewal":
        final = _subscription(sub_id, customer, metadata, *p2)
        inv2, pi2 = _invoice(stripe_api, final, metadata, *p2, "subscription_cycle")
        sent += [events.event("customer.subscription.updated", final, previous_attributes={"status": "incomplete"}), events.event("invoice.paid", inv2)]
        expected, active_until = {pi1: (p1[1], None), pi2: (p2[1], None)}, p2[1]
    elif scenario == "canceled mid-period after a renewal":
        renewed = _subscription(sub_id, customer, metadata, *p2)
        inv2, pi2 = _invoice(stripe_api, renewed, metadata, *p2, "subscription_cycle")
        final = _subscription(sub_id, customer, metadata, *p2, status="canceled", canceled_at=t - 5 * DAY, ended_at=t - 5 * DAY)
        sent += [
            events.event("customer.subscription.updated", renewed, previous_attributes={"status": "incomplete"}),
            events.event("invoice.paid", inv2),
            events.event("customer.subscription.deleted", final),
        ]
        expected, active_until = {pi1: (p1[1], None), pi2: (p2[1], "canceled")}, None
    elif scenario == "canceled at the end of the first period":
        ending = _subscription(sub_id, customer, metadata, *p1, cancel_at_period_end=True)
        final = _subscription(sub_id, customer, metadata, *p1, status="canceled", canceled_at=p1[0] + DAY, ended_at=p1[1])
        sent += [
            events.event("customer.subscription.updated", ending, previous_attributes={"cancel_at_period_end": False}),
            events.event("customer.subscription.deleted", final),
        ]
        expected, active_until = {pi1: (p1[1], None)}, None
    else:  # canceled at once in the first period
        active = _subscription(sub_id, customer, metadata, *p1)
        final = _subscription(sub_id, customer, metadata, *p1, status="canceled", canceled_at=p1[0] + 3 * DAY, ended_at=p1[0] + 3 * DAY)
        sent += [
            events.event("customer.subscription.updated", active, previous_attributes={"status": "incomplete"}),
            events.event("customer.subscription.deleted", final),
        ]
        expected, active_until = {pi1: (p1[1], "canceled")}, None
    stripe_api.put_subscription(final)
    return World(telegram_id, sent, expected, active_until)


SCENARIOS = [
    "active after a renewal",
    "canceled mid-period after a renewal",
    "canceled at the end of the first period",
    "canceled at once in the first period",
]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_delivery_order_ends_in_the_state_of_the_final_subscription(client, worker, stripe_api, data):
    world = build(stripe_api, data.draw(st.sampled_from(SCENARIOS), label="scenario"))
    order = data.draw(st.permutations(world.events), label="order")

    for event in order:
        row = deliver(client, stripe_webhook(event))
        assert row.status == "processed", (event["type"], row.error)

    user = users.find_user(world.telegram_id)
    held = {g.reference: (g.ends_at, g.revoke_reason) for g in Grant.select().where(Grant.user == user)}
    assert held == {ref: (from_timestamp(end), reason) for ref, (end, reason) in world.expected.items()}
    expected_summary = [] if world.active_until is None else [
        {"entitlement": "premium", "active": True, "expires_at": from_timestamp(world.active_until).isoformat() + "Z"}
    ]
    assert entitlements.summary(user) == expected_summary
