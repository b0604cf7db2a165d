"""Inbox handlers for Stripe events: checkout, invoices, subscriptions, refunds and disputes.

Whatever a handler needs from the Stripe API is fetched by its `prepare` function, before and
outside the inbox's transaction, so a slow Stripe never holds the database's write lock; the
handler itself only works on the database. `HANDLERS` at the end is the table the inbox runs
them from; event types without a row there are marked ignored.
"""
from __future__ import annotations

import contextlib

import stripe

from app import entitlements, inbox
from app.inbox import Context
from app.models import Event
from app.plans import PlanError
from app.stripe import SOURCE, CannotFulfil, NothingToDo
from app.stripe.checkout import PaidSession, apply_session, fetch_session, started_here
from app.stripe.client import NotConfigured, client_for, describe_error
from app.stripe.customers import user_for_customer
from app.stripe.objects import expandable_id, invoice_subscription_id, payer_of
from app.stripe.refunds import note_partial_refund
from app.stripe.subscriptions import PaidInvoice, apply_subscription, fetch_paid_invoice, fetch_subscription, grant_paid_invoice
from app.users import find_user


class StripeUnavailable(Exception):
    """Stripe could not answer now; the event is tried again."""


@contextlib.contextmanager
def outcomes():
    """Map what the Stripe services report onto the inbox: nothing to do is ignored, operator problems fail, outages retry."""
    try:
        yield
    except NothingToDo as exc:
        raise inbox.Ignore(str(exc)) from None
    except (CannotFulfil, NotConfigured, PlanError) as exc:
        raise inbox.PermanentError(str(exc)) from None
    except (stripe.InvalidRequestError, stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise inbox.PermanentError(describe_error(exc)) from None
    except stripe.StripeError as exc:
        raise StripeUnavailable(describe_error(exc)) from None


def _object(event: Event) -> dict:
    return event.payload["data"]["object"]


def _payer(obj: dict):
    user = user_for_customer(obj.get("customer"))
    telegram_id = payer_of(obj)
    return user or (find_user(telegram_id) if telegram_id is not None else None)


def _paid_session(event: Event, context: Context) -> PaidSession:
    """The event's Checkout Session as Stripe has it, checked as started here, billing its plan and paid.

    Only the session's id is taken from the event (and whether it looks like entitle's at all);
    everything that decides the grant is read back from Stripe.
    """
    session = _object(event)
    with outcomes():
        started_here(session)
        session_id = session.get("id")
        if not isinstance(session_id, str) or not session_id.startswith("cs_"):
            raise CannotFulfil(f"the event names no checkout session id ({session_id!r})")
        return fetch_session(context.settings, context.catalogue, session_id)


def checkout_paid(event: Event, context: Context, paid: PaidSession) -> None:
    """Grant what a paid Checkout Session bought (a session still awaiting payment is ignored)."""
    with outcomes():
        apply_session(paid)


def checkout_payment_failed(event: Event, context: Context) -> None:
    """Note a delayed payment that failed; nothing is granted."""
    session = _object(event)
    entitlements.record(_payer(session), "payment_failed", source=SOURCE, reference=session["id"], detail={"event": event.external_id})


def _paid_invoice(event: Event, context: Context) -> PaidInvoice:
    """The event's invoice and its subscription as Stripe has them now."""
    invoice = _object(event)
    if invoice_subscription_id(invoice) is None:
        raise inbox.Ignore(f"invoice {invoice['id']} is not a subscription's")
    with outcomes():
        return fetch_paid_invoice(client_for(context.settings), context.catalogue, invoice["id"])


def invoice_paid(event: Event, context: Context, paid: PaidInvoice) -> None:
    """Grant the period a subscription invoice paid for."""
    with outcomes():
        grant_paid_invoice(paid)


def _failed_invoice_subscription(event: Event, context: Context) -> dict | None:
    """The subscription of a failed invoice as Stripe has it now (None for an invoice that is not a subscription's)."""
    subscription_id = invoice_subscription_id(_object(event))
    if subscription_id is None:
        return None
    with outcomes():
        return fetch_subscription(client_for(context.settings), subscription_id)


def invoice_payment_failed(event: Event, context: Context, subscription: dict | None) -> None:
    """Note a failed renewal, and apply the subscription's state at Stripe: past due, in the plan's grace, while Stripe retries."""
    invoice = _object(event)
    if subscription is not None:
        apply_subscription(subscription, catalogue=context.catalogue)
    entitlements.record(
        _payer(invoice),
        "payment_failed",
        source=SOURCE,
        reference=invoice["id"],
        detail={"event": event.external_id, "subscription": invoice_subscription_id(invoice), "attempt": invoice.get("attempt_count")},
    )


def _current_subscription(event: Event, context: Context) -> dict:
    """The event's subscription as Stripe has it now, rather than as this (maybe stale) event shows it."""
    subscription_id = _object(event)["id"]
    if not subscription_id.startswith("sub_"):
        raise inbox.PermanentError(f"the event names no subscription id ({subscription_id!r})")
    with outcomes():
        return fetch_subscription(client_for(context.settings), subscription_id)


def subscription_changed(event: Event, context: Context, subscription: dict) -> None:
    """Apply the subscription's current state."""
    apply_subscription(subscription, catalogue=context.catalogue)


def charge_refunded(event: Event, context: Context) -> None:
    """Revoke what a fully refunded payment granted, or keep it from ever granting; a partial refund keeps the grant."""
    charge = _object(event)
    reference = expandable_id(charge.get("payment_intent")) or charge["id"]
    detail = {
        "charge": charge["id"], "amount": charge.get("amount"), "amount_refunded": charge.get("amount_refunded"),
        "currency": charge.get("currency"), "event": event.external_id,
    }
    payer = _payer(charge)
    if not charge.get("refunded"):
        note_partial_refund(reference, detail, payer)
        return
    entitlements.revoke_payment(SOURCE, reference, reason="refund", actor="stripe", detail=detail, user=payer)


def _disputed_payment(event: Event, context: Context) -> str:
    """The payment a dispute is about, traced through its charge at Stripe when the dispute names only that."""
    dispute = _object(event)
    reference = expandable_id(dispute.get("payment_intent"))
    charge_id = expandable_id(dispute.get("charge"))
    if reference is None and charge_id:
        with outcomes():
            charge = client_for(context.settings).v1.charges.retrieve(charge_id)
        reference = expandable_id(charge.payment_intent) or charge.id
    if reference is None:
        raise inbox.Ignore(f"dispute {dispute['id']} names no payment")
    return reference


def dispute_created(event: Event, context: Context, reference: str) -> None:
    """Revoke what a disputed payment granted, or keep it from ever granting, with reason `dispute`."""
    dispute = _object(event)
    entitlements.revoke_payment(
        SOURCE,
        reference,
        reason="dispute",
        actor="stripe",
        detail={"dispute": dispute["id"], "dispute_reason": dispute.get("reason"), "event": event.external_id},
    )


HANDLERS: inbox.Table = {
    "checkout.session.completed": inbox.handler(checkout_paid, prepare=_paid_session),
    "checkout.session.async_payment_succeeded": inbox.handler(checkout_paid, prepare=_paid_session),
    "checkout.session.async_payment_failed": inbox.handler(checkout_payment_failed),
    "invoice.paid": inbox.handler(invoice_paid, prepare=_paid_invoice),
    "invoice.payment_failed": inbox.handler(invoice_payment_failed, prepare=_failed_invoice_subscription),
    "customer.subscription.created": inbox.handler(subscription_changed, prepare=_current_subscription),
    "customer.subscription.updated": inbox.handler(subscription_changed, prepare=_current_subscription),
    "customer.subscription.deleted": inbox.handler(subscription_changed, prepare=_current_subscription),
    "charge.refunded": inbox.handler(charge_refunded),
    "charge.dispute.created": inbox.handler(dispute_created, prepare=_disputed_payment),
}
"""Stripe's event types and how the inbox runs each (all on the `payments` queue)."""
