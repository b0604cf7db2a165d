"""Subscriptions: one grant per paid invoice, revoked when the current subscription ended early.

Each paid invoice grants the entitlement until the end of the period it paid for, under the
reference of the payment (its PaymentIntent), so a refund revokes that period alone. The
subscription's state is always read fresh from Stripe, and a canceled subscription revokes
every grant that reaches past its end, so events handled in any order leave the same grants.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from app import entitlements, metrics
from app import subscriptions as records
from app.db import transaction
from app.clock import from_timestamp
from app.entitlements import GrantResult
from app.models import Grant, User
from app.plans import Catalogue, Plan
from app.stripe import SOURCE, CannotFulfil, NothingToDo
from app.stripe.client import plain
from app.stripe.customers import link_customer, user_for_customer
from app.stripe.objects import (
    charged,
    expandable_id,
    invoice_payment_intent_id,
    invoice_period_end,
    invoice_subscription_id,
    payer_of,
    subscription_period_end,
)
from app.users import ensure_user

ENDED_STATUSES = ("canceled", "incomplete_expired")
REVOKE_REASON = "canceled"


def _subscription_metadata(inv: Mapping[str, Any]) -> dict:
    details = (inv.get("parent") or {}).get("subscription_details") or inv.get("subscription_details") or {}
    return dict(details.get("metadata") or {})


def invoice_price_ids(inv: Mapping[str, Any]) -> list[str]:
    """The price ids an invoice's lines bill, in either API shape."""
    found = []
    for line in (inv.get("lines") or {}).get("data") or []:
        price = ((line.get("pricing") or {}).get("price_details") or {}).get("price") or line.get("price")
        price_id = expandable_id(price)
        if price_id:
            found.append(price_id)
    return found


def plan_for_invoice(catalogue: Catalogue, inv: Mapping[str, Any]) -> Plan:
    """The plan an invoice pays for: the plan selling its price (the one named in metadata first)."""
    prices = invoice_price_ids(inv)
    named = catalogue.get(_subscription_metadata(inv).get("plan"))
    if named is not None and (not prices or named.stripe_price in prices):
        return named
    for plan in catalogue:
        if plan.stripe_price and plan.stripe_price in prices:
            return plan
    if named is not None:
        return named
    raise CannotFulfil(f"invoice {inv.get('id')} bills price(s) {', '.join(prices) or 'none'} that no plan in PLANS_FILE sells")


def payment_reference(inv: Mapping[str, Any]) -> str:
    """What a paid invoice's grant is keyed on: the PaymentIntent that paid it, else the invoice itself."""
    return invoice_payment_intent_id(inv) or inv["id"]


def user_for_invoice(inv: Mapping[str, Any]) -> User:
    """The user an invoice bills: by its customer, else by the Telegram id in the subscription's metadata."""
    user = user_for_customer(inv.get("customer"))
    if user is not None:
        return user
    telegram_id = payer_of(inv)
    if telegram_id is None:
        raise NothingToDo(f"invoice {inv.get('id')} bills a customer unknown here")
    user = ensure_user(telegram_id)
    link_customer(user, expandable_id(inv.get("customer")))
    return user


def fetch_invoice(client: stripe.StripeClient, invoice_id: str) -> dict:
    """An invoice as Stripe has it now, with its payments."""
    return plain(client.v1.invoices.retrieve(invoice_id, params={"expand": ["payments"]}))


def fetch_subscription(client: stripe.StripeClient, subscription_id: str) -> dict:
    """A subscription as Stripe has it now."""
    return plain(client.v1.subscriptions.retrieve(subscription_id))


@dataclass(frozen=True)
class PaidInvoice:
    """A paid subscription invoice and its subscription as Stripe has them now, with the plan and period it pays for."""

    invoice: dict
    subscription: dict
    plan: Plan
    period_end: int


def fetch_paid_invoice(client: stripe.StripeClient, catalogue: Catalogue, invoice_id: str) -> PaidInvoice:
    """Fetch a subscription invoice and its subscription from Stripe, checking it is paid and bills a plan sold here."""
    inv = fetch_invoice(client, invoice_id)
    subscription_id = invoice_subscription_id(inv)
    if subscription_id is None:
        raise NothingToDo(f"invoice {invoice_id} is not a subscription's")
    if inv.get("status") != "paid":
        raise NothingToDo(f"invoice {invoice_id} is {inv.get('status')}, not paid")
    plan = plan_for_invoice(catalogue, inv)
    subscription = fetch_subscription(client, subscription_id)
    end = invoice_period_end(inv) or subscription_period_end(subscription)
    if end is None:
        raise CannotFulfil(f"invoice {invoice_id} names no period end")
    return PaidInvoice(inv, subscription, plan, end)


def grant_paid_invoice(paid: PaidInvoice) -> GrantResult:
    """Grant what a paid subscription invoice pays for (once), then apply the subscription's current state.

    A payment refunded or disputed before it was granted raises `entitlements.PaymentReversed`.
    """
    user = user_for_invoice(paid.invoice)
    # The grant, the subscription's record and its state as Stripe has it, in one transaction.
    with transaction():
        result = entitlements.grant(
            user,
            paid.plan.entitlement,
            source=SOURCE,
            reference=payment_reference(paid.invoice),
            until=from_timestamp(paid.period_end),
            plan=paid.plan.key,
            subscription_id=paid.subscription["id"],
            detail={"invoice": paid.invoice["id"], **charged(paid.invoice, "amount_paid")},
        )
        if result.created:
            metrics.count_stripe_payment(paid.invoice.get("amount_paid"), paid.invoice.get("currency"))
        if not result.grant.revoked_at:
            records.observe_payment(
                user, paid.plan, provider=SOURCE, key=paid.subscription["id"], period_end=from_timestamp(paid.period_end),
                actor="stripe",
            )
        apply_subscription(paid.subscription, plan=paid.plan)
    return result


def apply_subscription(subscription: Mapping[str, Any], *, plan: Plan | None = None, catalogue: Catalogue | None = None) -> list[Grant]:
    """Bring the subscription's record to its state at Stripe, and revoke the grants of an ended one that reach past its end.

    Grants of paid periods lapse on their own. Past due or unpaid: `past_due`, with the plan's
    grace; set to cancel (`cancel_at_period_end` or `cancel_at`): `canceled`; active otherwise.
    Only an ended subscription is final, which keeps the outcome independent of event order.
    """
    status = subscription.get("status")
    record = records.find(subscription["id"])
    if status not in ENDED_STATUSES:
        if record is not None:
            _apply_state(record, subscription, plan or (catalogue.get(record.plan) if catalogue is not None else None))
        return []
    ended = subscription.get("ended_at") or subscription.get("canceled_at") or subscription.get("created")
    cutoff = from_timestamp(ended)
    reaching_past = Grant.select().where(
        (Grant.subscription_id == subscription["id"])
        & Grant.revoked_at.is_null()
        & (Grant.ends_at.is_null() | (Grant.ends_at > cutoff))
    )
    revoked: list[Grant] = []
    for row in list(reaching_past):
        revoked += entitlements.revoke_reference(row.source, row.reference, reason=REVOKE_REASON)
    if record is not None:
        records.end(record, reason="canceled", actor="stripe")
    return revoked


def _apply_state(record, subscription: Mapping[str, Any], plan: Plan | None) -> None:
    status = subscription.get("status")
    if status in ("past_due", "unpaid"):
        records.fail_renewal(record, plan, actor="stripe", reason="payment_failed")
    elif status in ("active", "trialing"):
        if subscription.get("cancel_at_period_end") or subscription.get("cancel_at"):
            # Canceled here (the Mini App, the bot, the CLI) or by the payer in Stripe's Customer Portal.
            by = record.canceled_by or records.BY_PAYER
            records.move(record, records.CANCELED, actor="stripe", reason="cancel_at_period_end", canceled_by=by)
        elif record.state != records.PAST_DUE:
            # A past-due one turns active with the renewal's `invoice.paid`, which also ends its grace.
            records.move(record, records.ACTIVE, actor="stripe", reason="renewing", canceled_by=None)
