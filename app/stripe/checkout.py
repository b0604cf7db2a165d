"""Stripe Checkout and the Customer Portal: creating sessions, and fulfilling a paid session once."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from app import entitlements
from app.config import Settings
from app.db import transaction
from app.models import Grant, User
from app.plans import Catalogue, Plan
from app.stripe.api import SOURCE, CannotFulfil, NothingToDo, client_for, plain
from app.stripe.customers import METADATA_KEY, ensure_customer, link_customer
from app.stripe.events import expandable_id
from app.stripe.subscriptions import PaidInvoice, fetch_paid_invoice, grant_paid_invoice
from app.users import ensure_user

PAID_STATUSES = ("paid", "no_payment_required")


class NoCustomer(Exception):
    """The user has never paid by card, so there is no Stripe customer to manage."""


def app_url(settings: Settings) -> str:
    """The Mini App page payers return to."""
    return f"{settings.public_url}/app"


def success_url(settings: Settings) -> str:
    """Where Checkout sends a payer after paying; Stripe fills in the session id."""
    return f"{settings.public_url}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}"


def create_checkout_session(client: stripe.StripeClient, settings: Settings, user: User, plan: Plan) -> dict:
    """A Checkout Session for one plan, made out to the user's customer and naming the user and plan."""
    if not plan.sold_by_card:
        raise ValueError(f"plan {plan.key!r} is not sold by card")
    metadata = {METADATA_KEY: str(user.telegram_id), "plan": plan.key}
    params: dict[str, Any] = {
        "mode": plan.stripe_mode,
        "line_items": [{"price": plan.stripe_price, "quantity": 1}],
        "customer": ensure_customer(client, user),
        "client_reference_id": str(user.telegram_id),
        "metadata": metadata,
        "success_url": success_url(settings),
        "cancel_url": app_url(settings),
    }
    # The payment's own metadata lets refunds, disputes and invoices be traced back too.
    if plan.stripe_mode == "subscription":
        params["subscription_data"] = {"metadata": metadata}
    else:
        params["payment_intent_data"] = {"metadata": metadata}
    return plain(client.v1.checkout.sessions.create(params=params))


def create_portal_session(client: stripe.StripeClient, settings: Settings, user: User) -> dict:
    """A Customer Portal session for the user's customer, returning to the Mini App."""
    if not user.stripe_customer_id:
        raise NoCustomer(f"user {user.telegram_id} has no Stripe customer yet")
    session = client.v1.billing_portal.sessions.create(
        params={"customer": user.stripe_customer_id, "return_url": app_url(settings)}
    )
    return plain(session)


def retrieve_session(client: stripe.StripeClient, session_id: str) -> dict:
    """A Checkout Session as Stripe has it now."""
    return plain(client.v1.checkout.sessions.retrieve(session_id))


@dataclass(frozen=True)
class Fulfilment:
    """What fulfilling a session granted, and whether this call created the grant."""

    user: User
    plan: Plan
    grant: Grant
    created: bool


def _owner(session: Mapping[str, Any], catalogue: Catalogue) -> tuple[int, Plan]:
    metadata = session.get("metadata") or {}
    telegram_id = str(session.get("client_reference_id") or metadata.get(METADATA_KEY) or "")
    plan_key = metadata.get("plan")
    if not telegram_id.isdigit() or not plan_key:
        raise NothingToDo(f"checkout session {session.get('id')} was not created by entitle (no user or plan)")
    plan = catalogue.get(plan_key)
    if plan is None:
        raise CannotFulfil(f"checkout session {session.get('id')} bought plan {plan_key!r}, which is not in PLANS_FILE")
    return int(telegram_id), plan


@dataclass(frozen=True)
class PaidSession:
    """A paid Checkout Session started here, with what Stripe says it bought: enough to grant without calling Stripe."""

    session: dict
    telegram_id: int
    plan: Plan
    invoice: PaidInvoice | None  # a subscription's first invoice


def fetch_session(session: Mapping[str, Any], settings: Settings, catalogue: Catalogue) -> PaidSession:
    """Check that a Checkout Session was started here and is paid, and fetch from Stripe what granting it needs."""
    if session.get("mode") not in ("payment", "subscription"):
        raise NothingToDo(f"checkout session {session.get('id')} is in {session.get('mode')} mode")
    telegram_id, plan = _owner(session, catalogue)
    if session.get("payment_status") not in PAID_STATUSES:
        raise NothingToDo(f"checkout session {session.get('id')} is {session.get('payment_status')}, not paid")
    invoice = None
    if session["mode"] == "subscription":
        invoice_id = expandable_id(session.get("invoice"))
        if invoice_id is None:
            raise NothingToDo(f"checkout session {session.get('id')} has no invoice yet")
        invoice = fetch_paid_invoice(client_for(settings), catalogue, invoice_id)
    return PaidSession(dict(session), telegram_id, plan, invoice)


def apply_session(paid: PaidSession) -> Fulfilment:
    """Grant what a paid Checkout Session bought, once, whichever comes first: the webhook or the success page.

    A one-off payment's grant is keyed on its PaymentIntent, a subscription's on the payment of
    its first invoice (the key `invoice.paid` uses too), so every path meets the same grant.
    A payment refunded or disputed before it was granted raises `entitlements.PaymentReversed`.
    """
    session, plan = paid.session, paid.plan
    with transaction():
        user = ensure_user(paid.telegram_id)
        link_customer(user, expandable_id(session.get("customer")))
        if paid.invoice is not None:
            result = grant_paid_invoice(paid.invoice)
        else:
            result = entitlements.grant(
                user,
                plan.entitlement,
                source=SOURCE,
                reference=expandable_id(session.get("payment_intent")) or session["id"],
                days=plan.days,
                plan=plan.key,
                detail={"checkout_session": session["id"]},
            )
    return Fulfilment(user, plan, result.grant, result.created)
