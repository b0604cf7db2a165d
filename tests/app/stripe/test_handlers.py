"""Stripe events in the inbox: what each handler grants, keeps or revokes, run as a worker runs them.

Stripe is the fake API at the wire; events are built in Stripe's shapes and go through the real
inbox (`record`, then `process`), the path a worker takes.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from app import entitlements, inbox, users
from app.clock import from_timestamp, utcnow
from app.models import Event, Grant, LedgerEntry
from app.plans import Catalogue
from simulate import stripe_events as events
from app.stripe import objects
from app.stripe.client import client_for
from app.stripe.checkout import create_checkout_session
from app.stripe.customers import link_customer
from tests.app.stripe.helpers import completed, deliver, paid_subscription, stripe_env

DAY = 86400


@pytest.fixture
def env(env, stripe_api):
    return {**env, **stripe_env(stripe_api)}


@pytest.fixture
def stripe_ready(runtime, database):
    """The runtime of the test settings, whose handler tables `deliver` runs events with."""
    return runtime


def grants(telegram_id: int = 42) -> list[Grant]:
    return list(Grant.select().join(users.User).where(users.User.telegram_id == telegram_id).order_by(Grant.id))


# --- One-off Checkout payments ----------------------------------------------------------------


def test_a_paid_checkout_session_grants_the_plan_once_keyed_on_its_payment(stripe_ready, stripe_api):
    event = completed(stripe_api=stripe_api)
    assert deliver(stripe_ready, event).status == "processed"

    [grant] = grants()
    session = event["data"]["object"]
    assert (grant.source, grant.reference, grant.plan, grant.entitlement) == ("stripe", session["payment_intent"], "premium_week", "premium")
    assert abs(grant.ends_at - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)

    again = events.event("checkout.session.async_payment_succeeded", session)
    assert deliver(stripe_ready, again).status == "processed"
    assert len(grants()) == 1


def test_a_second_purchase_extends_from_the_end_of_the_first(stripe_ready, stripe_api):
    deliver(stripe_ready, completed(stripe_api=stripe_api))
    deliver(stripe_ready, completed(stripe_api=stripe_api))
    first, second = grants()
    assert second.starts_at == first.ends_at
    assert entitlements.current_end(first.user, "premium") == second.ends_at


def test_a_session_awaiting_a_delayed_payment_grants_only_when_it_succeeds(stripe_ready, stripe_api):
    waiting = completed(stripe_api=stripe_api, payment_status="unpaid", status="complete", payment_intent="pi_delayed000000000000001")
    row = deliver(stripe_ready, waiting)
    assert row.status == "ignored" and "unpaid" in row.error
    assert grants() == []

    session = stripe_api.set_checkout_session(waiting["data"]["object"]["id"], payment_status="paid")
    assert deliver(stripe_ready, events.event("checkout.session.async_payment_succeeded", session)).status == "processed"
    assert [g.reference for g in grants()] == ["pi_delayed000000000000001"]


def test_a_delayed_payment_that_fails_grants_nothing_and_is_noted(stripe_ready, stripe_api):
    users.ensure_user(42)
    session = completed(stripe_api=stripe_api, payment_status="unpaid", status="complete")["data"]["object"]
    assert deliver(stripe_ready, events.event("checkout.session.async_payment_failed", session)).status == "processed"
    assert grants() == []
    assert LedgerEntry.get(LedgerEntry.action == "payment_failed").reference == session["id"]


def test_a_session_not_started_by_entitle_is_ignored(stripe_ready):
    foreign = events.event("checkout.session.completed", events.checkout_session())
    row = deliver(stripe_ready, foreign)
    assert row.status == "ignored" and "not created by entitle" in row.error


def test_a_session_for_a_plan_no_longer_sold_fails_for_the_operator(stripe_ready, stripe_api):
    row = deliver(stripe_ready, completed(stripe_api=stripe_api, plan="retired_plan"))
    assert row.status == "failed" and "retired_plan" in row.error and row.attempts == 1
    assert grants() == []


# --- A session is fulfilled as Stripe has it, never as the event says ---------------------------


def test_a_session_stripe_does_not_know_fails_at_once_and_grants_nothing(stripe_ready, stripe_api):
    row = deliver(stripe_ready, completed(amount_total=1, currency="jpy"))

    assert row.status == "failed" and row.attempts == 1
    assert "Stripe knows no checkout session" in row.error
    assert grants() == []
    assert stripe_api.calls_to("GET", "/v1/checkout/sessions/")[0].params == {"expand": ["line_items"]}


def test_a_session_for_a_plan_not_sold_by_card_fails_and_grants_nothing(stripe_ready, stripe_api):
    row = deliver(stripe_ready, completed(stripe_api=stripe_api, plan="supporter_lifetime", prices=["price_one_yen"], amount_total=1, currency="jpy"))

    assert row.status == "failed" and row.attempts == 1
    assert "'supporter_lifetime', which is not sold by card" in row.error
    assert grants() == []


def test_a_session_billing_another_price_than_its_plans_fails_and_grants_nothing(stripe_ready, stripe_api):
    row = deliver(stripe_ready, completed(stripe_api=stripe_api, prices=["price_one_yen"], amount_total=1, currency="jpy"))

    assert row.status == "failed" and row.attempts == 1
    assert "bills price_one_yen, not the price of plan 'premium_week' (price_premium_week)" in row.error
    assert grants() == []


def test_a_session_unpaid_at_stripe_grants_nothing_whatever_the_event_says(stripe_ready, stripe_api):
    unpaid = stripe_api.put_checkout_session(
        events.checkout_session(payment_status="unpaid", client_reference_id="42", metadata={"telegram_user_id": "42", "plan": "premium_week"}),
        prices=["price_premium_week"],
    )
    claimed = events.event("checkout.session.completed", {**unpaid, "payment_status": "paid", "payment_intent": "pi_claimed000000000000"})

    row = deliver(stripe_ready, claimed)

    assert row.status == "ignored" and "unpaid, not paid" in row.error
    assert grants() == []


def test_metadata_naming_another_user_than_the_customers_fails_and_grants_neither(stripe_ready, stripe_api):
    payer = users.ensure_user(1)
    link_customer(payer, "cus_payer000001")
    event = completed(2, stripe_api=stripe_api, customer="cus_payer000001")

    row = deliver(stripe_ready, event)

    assert row.status == "failed" and row.attempts == 1
    assert "names user 2, but its customer cus_payer000001 belongs to user 1" in row.error
    assert grants(1) == [] and grants(2) == []
    assert users.find_user(2) is None


def test_the_session_stripe_has_decides_not_the_events_copy(stripe_ready, stripe_api):
    event = completed(stripe_api=stripe_api)
    session = event["data"]["object"]
    forged = events.event("checkout.session.completed", {**session, "client_reference_id": "7", "metadata": {"telegram_user_id": "7", "plan": "premium_week"}})

    assert deliver(stripe_ready, forged).status == "processed"

    assert grants(7) == [] and [g.reference for g in grants(42)] == [session["payment_intent"]]


def test_stripe_down_while_reading_the_session_back_is_retried_then_grants(stripe_ready, stripe_api):
    event = completed(stripe_api=stripe_api)
    stripe_api.fail("GET", "/v1/checkout/sessions", status=500, message="Stripe is having a moment")
    recorded = inbox.record("stripe", event["id"], event["type"], event)

    with pytest.raises(Exception, match="HTTP 500"):
        inbox.process(recorded.event.id, handlers=stripe_ready.handlers, context=stripe_ready.context, final_attempt=False)
    row = Event.get_by_id(recorded.event.id)
    assert row.status == "pending" and row.attempts == 1 and grants() == []

    stripe_api.clear_failures()
    assert inbox.process(recorded.event.id, handlers=stripe_ready.handlers, context=stripe_ready.context, final_attempt=False) == "processed"
    assert len(grants()) == 1


def test_a_session_created_and_paid_here_still_grants_once(stripe_ready, stripe_api, settings):
    user = users.ensure_user(42)
    plan = Catalogue.from_file(settings.plans_file).get("premium_week")
    created = create_checkout_session(client_for(settings), settings, user, plan)
    session = stripe_api.set_checkout_session(created["id"], payment_status="paid")

    assert deliver(stripe_ready, events.event("checkout.session.completed", session)).status == "processed"
    assert deliver(stripe_ready, events.event("checkout.session.completed", session)).status == "processed"

    [grant] = grants()
    assert (grant.reference, grant.plan) == (session["payment_intent"], "premium_week")


# --- Subscriptions ------------------------------------------------------------------------------


def test_a_subscription_checkout_and_its_first_invoice_meet_in_one_grant(stripe_ready, stripe_api, settings):
    session = paid_subscription(stripe_api, settings)
    invoice = stripe_api.invoices[session["invoice"]]
    subscription = stripe_api.subscriptions[session["subscription"]]

    assert deliver(stripe_ready, events.event("checkout.session.completed", session)).status == "processed"
    assert deliver(stripe_ready, events.event("invoice.paid", invoice)).status == "processed"

    [grant] = grants()
    payment = stripe_api.invoice_payments[invoice["id"]][0]["payment"]["payment_intent"]
    assert grant.reference == payment and grant.subscription_id == subscription["id"] and grant.plan == "premium_month"
    assert grant.ends_at == from_timestamp(objects.subscription_period_end(subscription))
    assert users.find_user(42).stripe_customer_id == session["customer"] == subscription["customer"]


def test_a_paid_renewal_extends_to_the_new_period_end(stripe_ready, stripe_api, settings):
    session = paid_subscription(stripe_api, settings)
    sub = stripe_api.subscriptions[session["subscription"]]
    first_end = objects.subscription_period_end(sub)
    renewal = events.invoice(
        customer=sub["customer"],
        subscription=sub["id"],
        subscription_item=sub["items"]["data"][0]["id"],
        price=sub["items"]["data"][0]["price"],
        billing_reason="subscription_cycle",
        period_start=first_end,
        period_end=first_end + 30 * DAY,
        payment_intent=stripe_api.put_payment_intent(customer=sub["customer"])["id"],
    )
    stripe_api.put_invoice(renewal)
    deliver(stripe_ready, events.event("checkout.session.completed", session))
    assert deliver(stripe_ready, events.event("invoice.paid", renewal)).status == "processed"

    assert len(grants()) == 2
    assert entitlements.current_end(users.find_user(42), "premium") == from_timestamp(first_end + 30 * DAY)


def test_a_failed_renewal_grants_nothing_and_is_noted(stripe_ready, stripe_api, settings):
    session = paid_subscription(stripe_api, settings)
    deliver(stripe_ready, events.event("checkout.session.completed", session))
    sub = stripe_api.subscriptions[session["subscription"]]
    failed = events.invoice(customer=sub["customer"], subscription=sub["id"], status="open", billing_reason="subscription_cycle")

    assert deliver(stripe_ready, events.event("invoice.payment_failed", failed)).status == "processed"
    assert len(grants()) == 1
    noted = LedgerEntry.get(LedgerEntry.action == "payment_failed")
    assert noted.reference == failed["id"] and noted.user.telegram_id == 42


def test_an_invoice_outside_any_subscription_is_ignored(stripe_ready):
    row = deliver(stripe_ready, events.event("invoice.paid", events.invoice()))
    assert row.status == "ignored" and "not a subscription" in row.error


def test_stripe_unreachable_fails_the_attempt_and_a_replay_grants(stripe_ready, stripe_api, settings):
    session = paid_subscription(stripe_api, settings)
    stripe_api.fail("GET", "/v1/invoices", status=500, message="Stripe is having a moment")
    row = deliver(stripe_ready, events.event("invoice.paid", stripe_api.invoices[session["invoice"]]))
    assert row.status == "failed" and "HTTP 500" in row.error and grants() == []

    stripe_api.clear_failures()
    inbox.mark_for_replay([row.id])
    assert inbox.process(row.id, handlers=stripe_ready.handlers, context=stripe_ready.context, final_attempt=True) == "processed"
    assert len(grants()) == 1


# --- Refunds and disputes ---------------------------------------------------------------------


def refunded_charge(payment_intent: str, amount_refunded: int) -> dict:
    charge = events.charge(payment_intent=payment_intent, amount=500, amount_refunded=amount_refunded)
    return events.event("charge.refunded", charge)


def test_a_partial_refund_keeps_the_grant_and_a_full_one_revokes_it(stripe_ready, stripe_api):
    event = completed(stripe_api=stripe_api)
    deliver(stripe_ready, event)
    payment = event["data"]["object"]["payment_intent"]

    assert deliver(stripe_ready, refunded_charge(payment, 200)).status == "processed"
    [grant] = grants()
    assert grant.revoked_at is None
    assert LedgerEntry.get(LedgerEntry.action == "partial_refund").detail["amount_refunded"] == 200

    assert deliver(stripe_ready, refunded_charge(payment, 500)).status == "processed"
    [grant] = grants()
    assert grant.revoked_at is not None and grant.revoke_reason == "refund"
    assert entitlements.summary(grant.user) == []


def test_a_refund_revokes_only_the_payment_it_refunds(stripe_ready, stripe_api):
    first, second = completed(stripe_api=stripe_api), completed(stripe_api=stripe_api)
    deliver(stripe_ready, first)
    deliver(stripe_ready, second)
    deliver(stripe_ready, refunded_charge(first["data"]["object"]["payment_intent"], 500))
    kept, revoked = sorted(grants(), key=lambda g: g.revoked_at is not None)
    assert kept.reference == second["data"]["object"]["payment_intent"] and kept.revoked_at is None
    assert revoked.revoke_reason == "refund"


def test_a_refund_of_a_payment_that_granted_nothing_is_recorded_with_its_payer(stripe_ready):
    payer = users.ensure_user(42)
    charge = events.charge(payment_intent="pi_early0000000000000000", amount=500, amount_refunded=500, metadata={"telegram_user_id": "42"})

    assert deliver(stripe_ready, events.event("charge.refunded", charge)).status == "processed"

    noted = LedgerEntry.get(LedgerEntry.action == "refund")
    assert (noted.reference, noted.user_id, noted.detail["revoked"]) == ("pi_early0000000000000000", payer.id, 0)
    assert grants() == []


def reversal(kind: str, payment: str) -> dict:
    """The event that takes a payment back: a full refund or a dispute."""
    if kind == "refund":
        return refunded_charge(payment, 500)
    return events.event("charge.dispute.created", events.dispute(payment_intent=payment))


@pytest.mark.parametrize("kind, said", [("refund", "refunded"), ("dispute", "disputed")])
def test_a_checkout_payment_taken_back_before_it_granted_never_grants(stripe_ready, stripe_api, kind, said):
    event = completed(stripe_api=stripe_api)
    payment = event["data"]["object"]["payment_intent"]
    assert deliver(stripe_ready, reversal(kind, payment)).status == "processed"

    row = deliver(stripe_ready, event)

    assert row.status == "ignored" and row.error == f"payment {payment} was {said} before it was granted"
    assert grants() == []
    assert entitlements.was_reversed("stripe", payment)


@pytest.mark.parametrize("kind, said", [("refund", "refunded"), ("dispute", "disputed")])
def test_a_subscription_payment_taken_back_before_it_granted_never_grants(stripe_ready, stripe_api, settings, kind, said):
    session = paid_subscription(stripe_api, settings)
    invoice = stripe_api.invoices[session["invoice"]]
    payment = stripe_api.invoice_payments[invoice["id"]][0]["payment"]["payment_intent"]
    assert deliver(stripe_ready, reversal(kind, payment)).status == "processed"

    paid = deliver(stripe_ready, events.event("invoice.paid", invoice))
    checkout = deliver(stripe_ready, events.event("checkout.session.completed", session))

    for row in (paid, checkout):
        assert row.status == "ignored" and row.error == f"payment {payment} was {said} before it was granted"
    assert grants() == []


def test_a_partial_refund_before_the_grant_does_not_keep_it_from_granting(stripe_ready, stripe_api):
    event = completed(stripe_api=stripe_api)
    payment = event["data"]["object"]["payment_intent"]
    assert deliver(stripe_ready, refunded_charge(payment, 200)).status == "processed"

    assert deliver(stripe_ready, event).status == "processed"

    [grant] = grants()
    assert grant.reference == payment and grant.revoked_at is None
    assert not entitlements.was_reversed("stripe", payment)


def test_a_dispute_revokes_with_reason_dispute(stripe_ready, stripe_api):
    event = completed(stripe_api=stripe_api)
    deliver(stripe_ready, event)
    payment = event["data"]["object"]["payment_intent"]
    assert deliver(stripe_ready, events.event("charge.dispute.created", events.dispute(payment_intent=payment))).status == "processed"
    [grant] = grants()
    assert grant.revoke_reason == "dispute"
    assert LedgerEntry.get(LedgerEntry.action == "dispute").reference == payment


def test_a_dispute_that_names_only_its_charge_is_traced_through_stripe(stripe_ready, stripe_api):
    intent = stripe_api.put_payment_intent()
    event = completed(stripe_api=stripe_api, payment_intent=intent["id"])
    deliver(stripe_ready, event)
    dispute = events.dispute(charge=intent["latest_charge"], payment_intent=None)
    assert deliver(stripe_ready, events.event("charge.dispute.created", dispute)).status == "processed"
    assert grants()[0].revoke_reason == "dispute"


def test_other_event_types_are_recorded_ignored(stripe_ready):
    row = deliver(stripe_ready, events.event("customer.created", events.customer()))
    assert row.status == "ignored" and "no handler" in row.error
    assert Event.select().count() == 1
