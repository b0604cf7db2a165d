"""Stripe Checkout and the Customer Portal: creating sessions, and fulfilling a paid session once."""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from app import entitlements, metrics
from app.entitlements import Fulfilment
from app.config import Settings
from app.db import database, transaction
from app.ways import gifts, trials
from app.models import CheckoutSession, Grant, User
from app.plans import Catalogue, Plan
from app.stripe import SOURCE, CannotFulfil, NothingToDo
from app.stripe.client import client_for, plain
from app.stripe.customers import METADATA_KEY, ensure_customer, link_customer, user_for_customer
from app.stripe.objects import charged, expandable_id, payer_of
from app.stripe.subscriptions import PaidInvoice, fetch_paid_invoice, grant_paid_invoice
from app.users import ensure_user, lock_user

PAID_STATUSES = ("paid", "no_payment_required")
MODES = ("payment", "subscription")


class UnknownSession(CannotFulfil):
    """Stripe knows no Checkout Session with this id, so it bought nothing."""


class NoCustomer(Exception):
    """The user has never paid by card, so there is no Stripe customer to manage."""


def app_url(settings: Settings) -> str:
    """The Mini App page payers return to."""
    return f"{settings.public_url}/app"


def success_url(settings: Settings) -> str:
    """Where Checkout sends a payer after paying; Stripe fills in the session id."""
    return f"{settings.public_url}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}"


def create_checkout_session(client: stripe.StripeClient, settings: Settings, user: User, plan: Plan, *, gift: bool = False) -> dict:
    """A Checkout Session for one plan, made out to the user's customer and naming the user and plan (a gift's when `gift`)."""
    if not plan.sold_by_card:
        raise ValueError(f"plan {plan.key!r} is not sold by card")
    if gift and plan.stripe_mode == "subscription":
        raise ValueError(f"plan {plan.key!r} is a subscription and cannot be a gift")
    metadata = {METADATA_KEY: str(user.telegram_id), "plan": plan.key}
    if gift:
        metadata["gift"] = "1"
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
        # A plan's free trial goes to Stripe, once per payer, like every trial (reserved now: a second session gets none).
        if not gift and trials.reserve_for_checkout(user, plan):
            params["subscription_data"]["trial_period_days"] = plan.trial_days
    else:
        params["payment_intent_data"] = {"metadata": metadata}
    if plan.stripe_promotion_codes:
        params["allow_promotion_codes"] = True
    session = plain(client.v1.checkout.sessions.create(params=params))
    with transaction():
        CheckoutSession.create(session_id=session["id"], user=user, plan=plan.key)
    return session


def created_here(session_id: str) -> bool:
    """Whether this service created the Checkout Session with this id."""
    if len(session_id) > CheckoutSession.session_id.max_length:
        return False
    return CheckoutSession.select().where(CheckoutSession.session_id == session_id).exists()


def create_portal_session(client: stripe.StripeClient, settings: Settings, user: User) -> dict:
    """A Customer Portal session for the user's customer, returning to the Mini App."""
    if not user.stripe_customer_id:
        raise NoCustomer(f"user {user.telegram_id} has no Stripe customer yet")
    session = client.v1.billing_portal.sessions.create(
        params={"customer": user.stripe_customer_id, "return_url": app_url(settings)}
    )
    return plain(session)


def retrieve_session(client: stripe.StripeClient, session_id: str) -> dict:
    """A Checkout Session as Stripe has it now, with its line items; `UnknownSession` when Stripe has none."""
    try:
        return plain(client.v1.checkout.sessions.retrieve(session_id, params={"expand": ["line_items"]}))
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise UnknownSession(f"Stripe knows no checkout session {session_id}") from None
        raise


def started_here(session: Mapping[str, Any]) -> tuple[int, str]:
    """The Telegram id and plan key a Checkout Session names, as entitle writes them; `NothingToDo` for another's session."""
    metadata = session.get("metadata") if isinstance(session.get("metadata"), Mapping) else {}
    if session.get("mode") not in MODES:
        raise NothingToDo(f"checkout session {session.get('id')} is in {session.get('mode')} mode")
    reference, named = str(session.get("client_reference_id") or ""), str(metadata.get(METADATA_KEY) or "")
    telegram_id, plan_key = payer_of(session), metadata.get("plan")
    if telegram_id is None or not isinstance(plan_key, str) or not plan_key:
        raise NothingToDo(f"checkout session {session.get('id')} was not created by entitle (no user or plan)")
    if reference and named and reference != named:
        raise CannotFulfil(f"checkout session {session.get('id')} names user {reference} and, in its metadata, user {named}")
    return telegram_id, plan_key


def _plan(session: Mapping[str, Any], plan_key: str, catalogue: Catalogue) -> Plan:
    plan = catalogue.get(plan_key)
    if plan is None:
        raise CannotFulfil(f"checkout session {session.get('id')} bought plan {plan_key!r}, which is not in PLANS_FILE")
    if not plan.sold_by_card:
        raise CannotFulfil(f"checkout session {session.get('id')} names plan {plan_key!r}, which is not sold by card")
    return plan


def billed_prices(session: Mapping[str, Any]) -> list[str]:
    """The price ids a Checkout Session's line items bill (the session must be retrieved with its line items)."""
    items = session.get("line_items") or {}
    found = [expandable_id(item.get("price")) for item in items.get("data") or [] if isinstance(item, Mapping)]
    return [price for price in found if price]


def _check_bills_plan(session: Mapping[str, Any], plan: Plan) -> None:
    items = session.get("line_items") or {}
    prices = billed_prices(session)
    if items.get("has_more") or set(prices) != {plan.stripe_price}:
        raise CannotFulfil(
            f"checkout session {session.get('id')} bills {', '.join(prices) or 'nothing'}, "
            f"not the price of plan {plan.key!r} ({plan.stripe_price})"
        )


@dataclass(frozen=True)
class PaidSession:
    """A paid Checkout Session started here, with what Stripe says it bought: enough to grant without calling Stripe."""

    session: dict
    telegram_id: int
    plan: Plan
    invoice: PaidInvoice | None  # a subscription's first invoice


def check_session(client: stripe.StripeClient, session: Mapping[str, Any], catalogue: Catalogue) -> PaidSession:
    """Check a Checkout Session as Stripe has it (with line items): started here, billing its plan's price, and paid.

    Then fetch from Stripe what granting it needs. A session that bills anything but its plan's
    `stripe_price` raises `CannotFulfil`; one not paid (yet) raises `NothingToDo`.
    """
    telegram_id, plan_key = started_here(session)
    plan = _plan(session, plan_key, catalogue)
    _check_bills_plan(session, plan)
    if session.get("payment_status") not in PAID_STATUSES:
        raise NothingToDo(f"checkout session {session.get('id')} is {session.get('payment_status')}, not paid")
    invoice = None
    if session["mode"] == "subscription":
        invoice_id = expandable_id(session.get("invoice"))
        if invoice_id is None:
            raise NothingToDo(f"checkout session {session.get('id')} has no invoice yet")
        invoice = fetch_paid_invoice(client, catalogue, invoice_id)
    return PaidSession(dict(session), telegram_id, plan, invoice)


def fetch_session(settings: Settings, catalogue: Catalogue, session_id: str) -> PaidSession:
    """Retrieve a Checkout Session from Stripe and check it as `check_session` does."""
    client = client_for(settings)
    return check_session(client, retrieve_session(client, session_id), catalogue)


def _check_customer_is_users(session: Mapping[str, Any], telegram_id: int) -> None:
    customer_id = expandable_id(session.get("customer"))
    owner = user_for_customer(customer_id)
    if owner is not None and owner.telegram_id != telegram_id:
        raise CannotFulfil(
            f"checkout session {session.get('id')} names user {telegram_id}, "
            f"but its customer {customer_id} belongs to user {owner.telegram_id}"
        )


def _open_gift(paid: PaidSession, user: User, reference: str) -> Fulfilment:
    """A gift grants its buyer nothing: the payment opens a gift whose link the bot sends them."""
    session, plan = paid.session, paid.plan
    if entitlements.was_reversed(SOURCE, reference):
        raise entitlements.PaymentReversed(f"payment {reference} was refunded before the gift was opened")
    detail = {"checkout_session": session["id"], **charged(session, "amount_total")}
    gift, created = gifts.record_purchase(user, plan, SOURCE, reference, detail)
    if created:
        metrics.count_stripe_payment(session.get("amount_total"), session.get("currency"))
    return Fulfilment(user, plan, None, created, gift=gift)


def apply_session(paid: PaidSession) -> Fulfilment:
    """Grant what a paid Checkout Session bought, once, whichever comes first: the webhook or the success page.

    A one-off payment's grant is keyed on its PaymentIntent, a subscription's on the payment of
    its first invoice (the key `invoice.paid` uses too), so every path meets the same grant.
    A payment refunded or disputed before it was granted raises `entitlements.PaymentReversed`;
    a session whose customer belongs to another user than it names raises `CannotFulfil`.
    """
    session, plan = paid.session, paid.plan
    customer_id = expandable_id(session.get("customer"))
    # Inside the inbox's transaction no savepoint of its own (nothing is written before a refusal).
    with transaction() if not database.in_transaction() else contextlib.nullcontext():
        _check_customer_is_users(session, paid.telegram_id)
        if paid.invoice is not None:
            user = ensure_user(paid.telegram_id)
            link_customer(user, customer_id)
            result = grant_paid_invoice(paid.invoice)
        else:
            # The payer's row written, its customer remembered, its lock and the payment's taken in one statement.
            reference = expandable_id(session.get("payment_intent")) or session["id"]
            user = lock_user(paid.telegram_id, stripe_customer_id=customer_id, payment=(SOURCE, reference))
            if (session.get("metadata") or {}).get("gift") == "1":
                return _open_gift(paid, user, reference)
            result = entitlements.grant(
                user,
                plan.entitlement,
                source=SOURCE,
                reference=reference,
                days=plan.days,
                plan=plan.key,
                detail={"checkout_session": session["id"], **charged(session, "amount_total")},
                locked=True,
            )
            if result.created:
                metrics.count_stripe_payment(session.get("amount_total"), session.get("currency"))
    return Fulfilment(user, plan, result.grant, result.created, held_until=result.held_until)
