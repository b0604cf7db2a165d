"""Stripe events in the inbox: what each handler grants, keeps or revokes, run as a worker runs them.

Stripe is the fake API at the wire; events are built in Stripe's shapes, signed, posted to the
webhook and run by a real worker (`tests.support.delivery.deliver`).
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from app import entitlements, users
from app.clock import from_timestamp, utcnow
from app.models import Event, EventLog, Grant, LedgerEntry
from app.plans import Catalogue
from simulate import stripe_events as events
from app.stripe import objects
from app.stripe.client import DEFAULT_MAX_NETWORK_RETRIES, client_for
from app.stripe.checkout import create_checkout_session
from app.stripe.customers import link_customer
from tests.support.delivery import deliver
from tests.support.stripe import completed, paid_subscription, stripe_webhook
from tests.support.waiting import wait_for

DAY = 86400


def grants(telegram_id: int = 42) -> list[Grant]:
    return list(Grant.select().join(users.User).where(users.User.telegram_id == telegram_id).order_by(Grant.id))


# --- One-off Checkout payments ----------------------------------------------------------------


def test_a_paid_checkout_session_grants_the_plan_once_keyed_on_its_payment(client, worker, stripe_api):
    event = completed(stripe_api=stripe_api)
    assert deliver(client, stripe_webhook(event)).status == "processed"

    [grant] = grants()
    session = event["data"]["object"]
    assert (grant.source, grant.reference, grant.plan, grant.entitlement) == ("stripe", session["payment_intent"], "premium_week", "premium")
    assert abs(grant.ends_at - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)

    again = events.event("checkout.session.async_payment_succeeded", session)
    assert deliver(client, stripe_webhook(again)).status == "processed"
    assert len(grants()) == 1


def test_a_second_purchase_extends_from_the_end_of_the_first(client, worker, stripe_api):
    deliver(client, stripe_webhook(completed(stripe_api=stripe_api)))
    deliver(client, stripe_webhook(completed(stripe_api=stripe_api)))
    first, second = grants()
    assert second.starts_at == first.ends_at
    assert entitlements.current_end(first.user, "premium") == second.ends_at


def test_a_session_awaiting_a_delayed_payment_grants_only_when_it_succeeds(client, worker, stripe_api):
    waiting = completed(stripe_api=stripe_api, payment_status="unpaid", status="complete", payment_intent="pi_delayed000000000000001")
    row = deliver(client, stripe_webhook(waiting))
    assert row.status == "ignored" and "unpaid" in row.error
    assert grants() == []

    session = stripe_api.set_checkout_session(waiting["data"]["object"]["id"], payment_status="paid")
    assert deliver(client, stripe_webhook(events.event("checkout.session.async_payment_succeeded", session))).status == "processed"
    assert [g.reference for g in grants()] == ["pi_delayed000000000000001"]


def test_a_delayed_payment_that_fails_grants_nothing_and_is_noted(client, worker, stripe_api):
    users.ensure_user(42)
    session = completed(stripe_api=stripe_api, payment_status="unpaid", status="complete")["data"]["object"]
    assert deliver(client, stripe_webhook(events.event("checkout.session.async_payment_failed", session))).status == "processed"
    assert grants() == []
    assert LedgerEntry.get(LedgerEntry.action == "payment_failed").reference == session["id"]


def test_a_session_not_started_by_entitle_is_ignored(client, worker):
    foreign = events.event("checkout.session.completed", events.checkout_session())
    row = deliver(client, stripe_webhook(foreign))
    assert row.status == "ignored" and "not created by entitle" in row.error


def test_a_session_for_a_plan_no_longer_sold_fails_for_the_operator(client, worker, stripe_api):
    row = deliver(client, stripe_webhook(completed(stripe_api=stripe_api, plan="retired_plan")))
    assert row.status == "failed" and "retired_plan" in row.error and row.attempts == 1
    assert grants() == []


# --- A session is fulfilled as Stripe has it, never as the event says ---------------------------


def test_a_session_stripe_does_not_know_fails_at_once_and_grants_nothing(client, worker, stripe_api):
    row = deliver(client, stripe_webhook(completed(amount_total=1, currency="jpy")))

    assert row.status == "failed" and row.attempts == 1
    assert "Stripe knows no checkout session" in row.error
    assert grants() == []
    assert stripe_api.calls_to("GET", "/v1/checkout/sessions/")[0].params == {"expand": ["line_items"]}


def test_a_session_for_a_plan_not_sold_by_card_fails_and_grants_nothing(client, worker, stripe_api):
    row = deliver(client, stripe_webhook(completed(stripe_api=stripe_api, plan="supporter_lifetime", prices=["price_one_yen"], amount_total=1, currency="jpy")))

    assert row.status == "failed" and row.attempts == 1
    assert "'supporter_lifetime', which is not sold by card" in row.error
    assert grants() == []


def test_a_session_billing_another_price_than_its_plans_fails_and_grants_nothing(client, worker, stripe_api):
    row = deliver(client, stripe_webhook(completed(stripe_api=stripe_api, prices=["price_one_yen"], amount_total=1, currency="jpy")))

    assert row.status == "failed" and row.attempts == 1
    assert "bills price_one_yen, not the price of plan 'premium_week' (price_premium_week)" in row.error
    assert grants() == []


def test_a_session_unpaid_at_stripe_grants_nothing_whatever_the_event_says(client, worker, stripe_api):
    unpaid = stripe_api.put_checkout_session(
        events.checkout_session(payment_status="unpaid", client_reference_id="42", metadata={"telegram_user_id": "42", "plan": "premium_week"}),
        prices=["price_premium_week"],
    )
    claimed = events.event("checkout.session.completed", {**unpaid, "payment_status": "paid", "payment_intent": "pi_claimed000000000000"})

    row = deliver(client, stripe_webhook(claimed))

    assert row.status == "ignored" and "unpaid, not paid" in row.error
    assert grants() == []


def test_metadata_naming_another_user_than_the_customers_fails_and_grants_neither(client, worker, stripe_api):
    payer = users.ensure_user(1)
    link_customer(payer, "cus_payer000001")
    event = completed(2, stripe_api=stripe_api, customer="cus_payer000001")

    row = deliver(client, stripe_webhook(event))

    assert row.status == "failed" and row.attempts == 1
    assert "names user 2, but its customer cus_payer000001 belongs to user 1" in row.error
    assert grants(1) == [] and grants(2) == []
    assert users.find_user(2) is None


def test_the_session_stripe_has_decides_not_the_events_copy(client, worker, stripe_api):
    event = completed(stripe_api=stripe_api)
    session = event["data"]["object"]
    forged = events.event("checkout.session.completed", {**session, "client_reference_id": "7", "metadata": {"telegram_user_id": "7", "plan": "premium_week"}})

    assert deliver(client, stripe_webhook(forged)).status == "processed"

    assert grants(7) == [] and [g.reference for g in grants(42)] == [session["payment_intent"]]


def test_stripe_down_while_reading_the_session_back_is_retried_then_grants(client, worker, stripe_api):
    event = completed(stripe_api=stripe_api)
    # One attempt's worth of 500s: the client's own retries, then the worker's next attempt finds Stripe back.
    stripe_api.fail("GET", "/v1/checkout/sessions", status=500, message="Stripe is having a moment", times=1 + DEFAULT_MAX_NETWORK_RETRIES)

    row = deliver(client, stripe_webhook(event))

    assert row.status == "processed" and row.attempts == 2
    [failed_attempt] = EventLog.select().where((EventLog.event == row.id) & (EventLog.action == "attempt_failed"))
    assert "HTTP 500" in failed_attempt.detail
    assert len(grants()) == 1


def test_a_session_created_and_paid_here_still_grants_once(client, worker, stripe_api, settings):
    user = users.ensure_user(42)
    plan = Catalogue.from_file(settings.plans_file).get("premium_week")
    created = create_checkout_session(client_for(settings), settings, user, plan)
    session = stripe_api.set_checkout_session(created["id"], payment_status="paid")

    assert deliver(client, stripe_webhook(events.event("checkout.session.completed", session))).status == "processed"
    assert deliver(client, stripe_webhook(events.event("checkout.session.completed", session))).status == "processed"

    [grant] = grants()
    assert (grant.reference, grant.plan) == (session["payment_intent"], "premium_week")


# --- Subscriptions ------------------------------------------------------------------------------


def test_a_subscription_checkout_and_its_first_invoice_meet_in_one_grant(client, worker, stripe_api, settings):
    session = paid_subscription(stripe_api, settings)
    invoice = stripe_api.invoices[session["invoice"]]
    subscription = stripe_api.subscriptions[session["subscription"]]

    assert deliver(client, stripe_webhook(events.event("checkout.session.completed", session))).status == "processed"
    assert deliver(client, stripe_webhook(events.event("invoice.paid", invoice))).status == "processed"

    [grant] = grants()
    payment = stripe_api.invoice_payments[invoice["id"]][0]["payment"]["payment_intent"]
    assert grant.reference == payment and grant.subscription_id == subscription["id"] and grant.plan == "premium_month"
    assert grant.ends_at == from_timestamp(objects.subscription_period_end(subscription))
    assert users.find_user(42).stripe_customer_id == session["customer"] == subscription["customer"]


def test_a_paid_renewal_extends_to_the_new_period_end(client, worker, stripe_api, settings):
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
    deliver(client, stripe_webhook(events.event("checkout.session.completed", session)))
    assert deliver(client, stripe_webhook(events.event("invoice.paid", renewal))).status == "processed"

    assert len(grants()) == 2
    assert entitlements.current_end(users.find_user(42), "premium") == from_timestamp(first_end + 30 * DAY)


def test_a_failed_renewal_grants_nothing_and_is_noted(client, worker, stripe_api, settings):
    session = paid_subscription(stripe_api, settings)
    deliver(client, stripe_webhook(events.event("checkout.session.completed", session)))
    sub = stripe_api.subscriptions[session["subscription"]]
    failed = events.invoice(customer=sub["customer"], subscription=sub["id"], status="open", billing_reason="subscription_cycle")

    assert deliver(client, stripe_webhook(events.event("invoice.payment_failed", failed))).status == "processed"
    assert len(grants()) == 1
    noted = LedgerEntry.get(LedgerEntry.action == "payment_failed")
    assert noted.reference == failed["id"] and noted.user.telegram_id == 42


def test_an_invoice_outside_any_subscription_is_ignored(client, worker):
    row = deliver(client, stripe_webhook(events.event("invoice.paid", events.invoice())))
    assert row.status == "ignored" and "not a subscription" in row.error


def test_stripe_unreachable_fails_the_attempts_and_a_replay_grants(client, worker, cli, stripe_api, settings):
    session = paid_subscription(stripe_api, settings)
    stripe_api.fail("GET", "/v1/invoices", status=500, message="Stripe is having a moment")
    row = deliver(client, stripe_webhook(events.event("invoice.paid", stripe_api.invoices[session["invoice"]])))
    assert row.status == "failed" and "HTTP 500" in row.error and grants() == []

    stripe_api.clear_failures()
    assert cli("events", "replay", str(row.id)).exit_code == 0
    wait_for(lambda: Event.get_by_id(row.id).status == "processed", message="the replayed invoice processed")
    assert len(grants()) == 1


# --- Refunds and disputes ---------------------------------------------------------------------


def refunded_charge(payment_intent: str, amount_refunded: int) -> dict:
    charge = events.charge(payment_intent=payment_intent, amount=500, amount_refunded=amount_refunded)
    return events.event("charge.refunded", charge)


def test_a_partial_refund_keeps_the_grant_and_a_full_one_revokes_it(client, worker, stripe_api):
    event = completed(stripe_api=stripe_api)
    deliver(client, stripe_webhook(event))
    payment = event["data"]["object"]["payment_intent"]

    assert deliver(client, stripe_webhook(refunded_charge(payment, 200))).status == "processed"
    [grant] = grants()
    assert grant.revoked_at is None
    assert LedgerEntry.get(LedgerEntry.action == "partial_refund").detail["amount_refunded"] == 200

    assert deliver(client, stripe_webhook(refunded_charge(payment, 500))).status == "processed"
    [grant] = grants()
    assert grant.revoked_at is not None and grant.revoke_reason == "refund"
    assert entitlements.summary(grant.user) == []


def test_a_refund_revokes_only_the_payment_it_refunds(client, worker, stripe_api):
    first, second = completed(stripe_api=stripe_api), completed(stripe_api=stripe_api)
    deliver(client, stripe_webhook(first))
    deliver(client, stripe_webhook(second))
    deliver(client, stripe_webhook(refunded_charge(first["data"]["object"]["payment_intent"], 500)))
    kept, revoked = sorted(grants(), key=lambda g: g.revoked_at is not None)
    assert kept.reference == second["data"]["object"]["payment_intent"] and kept.revoked_at is None
    assert revoked.revoke_reason == "refund"


def test_a_refund_of_a_payment_that_granted_nothing_is_recorded_with_its_payer(client, worker):
    payer = users.ensure_user(42)
    charge = events.charge(payment_intent="pi_early0000000000000000", amount=500, amount_refunded=500, metadata={"telegram_user_id": "42"})

    assert deliver(client, stripe_webhook(events.event("charge.refunded", charge))).status == "processed"

    noted = LedgerEntry.get(LedgerEntry.action == "refund")
    assert (noted.reference, noted.user_id, noted.detail["revoked"]) == ("pi_early0000000000000000", payer.id, 0)
    assert grants() == []


def reversal(kind: str, payment: str) -> dict:
    """The event that takes a payment back: a full refund or a dispute."""
    if kind == "refund":
        return refunded_charge(payment, 500)
    return events.event("charge.dispute.created", events.dispute(payment_intent=payment))


@pytest.mark.parametrize("kind, said", [("refund", "refunded"), ("dispute", "disputed")])
def test_a_checkout_payment_taken_back_before_it_granted_never_grants(client, worker, stripe_api, kind, said):
    event = completed(stripe_api=stripe_api)
    payment = event["data"]["object"]["payment_intent"]
    assert deliver(client, stripe_webhook(reversal(kind, payment))).status == "processed"

    row = deliver(client, stripe_webhook(event))

    assert row.status == "ignored" and row.error == f"payment {payment} was {said} before it was granted"
    assert grants() == []
    assert entitlements.was_reversed("stripe", payment)


@pytest.mark.parametrize("kind, said", [("refund", "refunded"), ("dispute", "disputed")])
def test_a_subscription_payment_taken_back_before_it_granted_never_grants(client, worker, stripe_api, settings, kind, said):
    session = paid_subscription(stripe_api, settings)
    invoice = stripe_api.invoices[session["invoice"]]
    payment = stripe_api.invoice_payments[invoice["id"]][0]["payment"]["payment_intent"]
    assert deliver(client, stripe_webhook(reversal(kind, payment))).status == "processed"

    paid = deliver(client, stripe_webhook(events.event("invoice.paid", invoice)))
    checkout = deliver(client, stripe_webhook(events.event("checkout.session.completed", session)))

    for row in (paid, checkout):
        assert row.status == "ignored" and row.error == f"payment {payment} was {said} before it was granted"
    assert grants() == []


def test_a_partial_refund_before_the_grant_does_not_keep_it_from_granting(client, worker, stripe_api):
    event = completed(stripe_api=stripe_api)
    payment = event["data"]["object"]["payment_intent"]
    assert deliver(client, stripe_webhook(refunded_charge(payment, 200))).status == "processed"

    assert deliver(client, stripe_webhook(event)).status == "processed"

    [grant] = grants()
    assert grant.reference == payment and grant.revoked_at is None
    assert not entitlements.was_reversed("stripe", payment)


def test_a_dispute_revokes_with_reason_dispute(client, worker, stripe_api):
    event = completed(stripe_api=stripe_api)
    deliver(client, stripe_webhook(event))
    payment = event["data"]["object"]["payment_intent"]
    assert deliver(client, stripe_webhook(events.event("charge.dispute.created", events.dispute(payment_intent=payment)))).status == "processed"
    [grant] = grants()
    assert grant.revoke_reason == "dispute"
    assert LedgerEntry.get(LedgerEntry.action == "dispute").reference == payment


def test_a_dispute_that_names_only_its_charge_is_traced_through_stripe(client, worker, stripe_api):
    intent = stripe_api.put_payment_intent()
    event = completed(stripe_api=stripe_api, payment_intent=intent["id"])
    deliver(client, stripe_webhook(event))
    dispute = events.dispute(charge=intent["latest_charge"], payment_intent=None)
    assert deliver(client, stripe_webhook(events.event("charge.dispute.created", dispute))).status == "processed"
    assert grants()[0].revoke_reason == "dispute"


def test_other_event_types_are_recorded_ignored(client, worker):
    row = deliver(client, stripe_webhook(events.event("customer.created", events.customer())))
    assert row.status == "ignored" and "no handler" in row.error
    assert Event.select().count() == 1
