"""Refunds of card payments: the operator's refund, and partial refunds Stripe reports."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import stripe

from app import entitlements
from app.models import Grant, User
from app.stripe import SOURCE
from app.stripe.client import describe_error
from app.stripe.customers import METADATA_KEY
from app.stripe.subscriptions import ENDED_STATUSES, fetch_subscription

ALREADY_REFUNDED = "charge_already_refunded"


class UnknownPayment(Exception):
    """No grant here was made for this PaymentIntent."""


class RefundFailed(Exception):
    """Stripe refused or could not take the refund; nothing was revoked."""


def note_partial_refund(reference: str, detail: dict, user: User | None = None) -> None:
    """Record a partial refund in the ledger; a grant stays, and the payment may still grant."""
    grant = entitlements.find_grant(SOURCE, reference)
    entitlements.record(
        grant.user if grant else user,
        "partial_refund",
        source=SOURCE,
        reference=reference,
        entitlement=grant.entitlement if grant else None,
        detail=detail,
    )


def stop_renewals(client: stripe.StripeClient, subscription_id: str) -> None:
    """Let a subscription run to the end of its paid period and renew no more (what Telegram's `is_canceled` does)."""
    subscription = fetch_subscription(client, subscription_id)
    if subscription.get("status") in ENDED_STATUSES or subscription.get("cancel_at_period_end"):
        return
    client.v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": True})


@dataclass
class RefundResult:
    """A refund taken at Stripe (or found taken before), the grants it revoked here, and whether renewals stopped."""

    payment_intent: str
    grant: Grant
    refund_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    already_refunded: bool = False
    revoked: list[Grant] = field(default_factory=list)
    renewal_canceled: bool | None = None  # None: not a subscription's payment
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when Stripe did everything asked of it."""
        return not self.errors


def refund_payment(client: stripe.StripeClient, payment_intent_id: str, *, actor: str = "operator") -> RefundResult:
    """Refund a card payment in full at Stripe, revoke what it granted, and stop its subscription's renewals.

    Nothing changes when Stripe refuses the refund, except that an already refunded payment
    still has its grant revoked (and its renewals stopped).
    """
    grant = entitlements.find_grant(SOURCE, payment_intent_id)
    if grant is None:
        raise UnknownPayment(f"no grant here was made for Stripe payment {payment_intent_id}")
    result = RefundResult(payment_intent_id, grant)
    try:
        # A key per run, shared only by stripe-python's retries within it: Stripe replays a key's
        # first answer, failures included, for 24 hours, so a fixed key would keep a failed refund failing.
        refund = client.v1.refunds.create(
            params={
                "payment_intent": payment_intent_id,
                "reason": "requested_by_customer",
                "metadata": {METADATA_KEY: str(grant.user.telegram_id), "entitlement": grant.entitlement},
            },
            options={"idempotency_key": f"refund-{payment_intent_id}-{uuid.uuid4().hex}"},
        )
        result.refund_id, result.amount, result.currency = refund.id, refund.amount, refund.currency
        detail = {"refund": refund.id, "amount": refund.amount, "currency": refund.currency}
    except stripe.StripeError as exc:
        if exc.code != ALREADY_REFUNDED:
            raise RefundFailed(describe_error(exc)) from None
        result.already_refunded = True
        detail = {"already_refunded": True}
    result.revoked = entitlements.revoke_payment(SOURCE, payment_intent_id, reason="refund", actor=actor, detail=detail)
    if grant.subscription_id:
        try:
            stop_renewals(client, grant.subscription_id)
            result.renewal_canceled = True
        except stripe.StripeError as exc:
            result.renewal_canceled = False
            result.errors.append(f"stopping the renewals of {grant.subscription_id} failed: {describe_error(exc)}; run the command again")
    return result
