"""Refunds and disputes of card payments: the operator's refund, and the ones Stripe reports."""
from __future__ import annotations

from dataclasses import dataclass, field

import stripe

from app import entitlements
from app.db import transaction
from app.models import Grant
from app.stripe.api import SOURCE
from app.stripe.client import describe_stripe_error
from app.stripe.customers import METADATA_KEY


class UnknownPayment(Exception):
    """No grant here was made for this PaymentIntent."""


class RefundFailed(Exception):
    """Stripe refused or could not take the refund; nothing was revoked."""


def revoke_payment(reference: str, *, reason: str, actor: str, detail: dict | None = None) -> list[Grant]:
    """Revoke what one payment granted and note why in the ledger; returns the grants revoked now."""
    with transaction():
        revoked = entitlements.revoke_reference(SOURCE, reference, reason=reason, actor=actor)
        grant = entitlements.find_grant(SOURCE, reference)
        entitlements.record(
            grant.user if grant else None,
            reason,
            source=SOURCE,
            reference=reference,
            entitlement=grant.entitlement if grant else None,
            detail={"actor": actor, "revoked": len(revoked), **(detail or {})},
        )
    return revoked


def note_partial_refund(reference: str, detail: dict) -> None:
    """Record a partial refund in the ledger; the grant stays."""
    grant = entitlements.find_grant(SOURCE, reference)
    entitlements.record(
        grant.user if grant else None,
        "partial_refund",
        source=SOURCE,
        reference=reference,
        entitlement=grant.entitlement if grant else None,
        detail=detail,
    )


@dataclass
class RefundResult:
    """A refund taken at Stripe and the grants it revoked here."""

    payment_intent: str
    grant: Grant
    refund_id: str
    amount: int | None
    currency: str | None
    revoked: list[Grant] = field(default_factory=list)


def refund_payment(client: stripe.StripeClient, payment_intent_id: str, *, actor: str = "operator") -> RefundResult:
    """Refund a card payment in full at Stripe, then revoke what it granted; nothing changes if Stripe refuses."""
    grant = entitlements.find_grant(SOURCE, payment_intent_id)
    if grant is None:
        raise UnknownPayment(f"no grant here was made for Stripe payment {payment_intent_id}")
    try:
        # One key per payment: running the command again returns the same refund instead of failing.
        refund = client.v1.refunds.create(
            params={
                "payment_intent": payment_intent_id,
                "reason": "requested_by_customer",
                "metadata": {METADATA_KEY: str(grant.user.telegram_id), "entitlement": grant.entitlement},
            },
            options={"idempotency_key": f"refund-{payment_intent_id}"},
        )
    except stripe.StripeError as exc:
        raise RefundFailed(describe_stripe_error(exc)) from None
    revoked = revoke_payment(
        payment_intent_id, reason="refund", actor=actor, detail={"refund": refund.id, "amount": refund.amount, "currency": refund.currency}
    )
    return RefundResult(payment_intent_id, grant, refund.id, refund.amount, refund.currency, revoked)
