"""Telegram Stars payments: invoice payloads, invoices, the pre-checkout decision and fulfilment."""
from __future__ import annotations

import contextlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import telebot
from telebot import types

from app import entitlements, metrics, subscriptions, users
from app.entitlements import Fulfilment
from app.clock import from_timestamp, iso, utcnow
from app.db import database, transaction
from app.models import Grant, LedgerEntry, User
from app.plans import STAR_SUBSCRIPTION_PERIOD, Catalogue, Plan
from app.telegram import SOURCE

CURRENCY = "XTR"
PAYLOAD_VERSION = "e1"
GIFT_PAYLOAD_VERSION = "g1"  # an invoice for a gift: paid by its buyer, held by whoever redeems it
MAX_PAYLOAD_BYTES = 128  # the Bot API's limit for invoice payloads

_PAYLOAD = re.compile(r"^(e1|g1):([a-z0-9][a-z0-9_\-]{0,63}):([1-9][0-9]{0,19}):([0-9a-f]{8})$")


# -- invoice payloads ----------------------------------------------------------------------


@dataclass(frozen=True)
class InvoicePayload:
    """What an invoice's payload names: the plan, the user it was made out to, and a nonce."""

    plan: str
    user_id: int
    nonce: str
    gift: bool = False

    def encode(self) -> str:
        """The payload string sent with the invoice."""
        return f"{GIFT_PAYLOAD_VERSION if self.gift else PAYLOAD_VERSION}:{self.plan}:{self.user_id}:{self.nonce}"


def encode_payload(plan_key: str, user_id: int, *, gift: bool = False) -> str:
    """A fresh invoice payload naming the plan and the user the invoice is for (its buyer, for a gift)."""
    text = InvoicePayload(plan_key, int(user_id), secrets.token_hex(4), gift).encode()
    if len(text.encode()) > MAX_PAYLOAD_BYTES or not _PAYLOAD.match(text):
        raise ValueError(f"cannot make an invoice payload for plan {plan_key!r} and user {user_id}")
    return text


def decode_payload(text: str | None) -> InvoicePayload | None:
    """The plan and user an invoice payload names, or None when it is not one of ours."""
    match = _PAYLOAD.match(text or "")
    if match is None:
        return None
    return InvoicePayload(match[2], int(match[3]), match[4], match[1] == GIFT_PAYLOAD_VERSION)


# -- invoices ------------------------------------------------------------------------------


def invoice_params(plan: Plan, user_id: int, *, gift: bool = False) -> dict:
    """The Bot API parameters of a Stars invoice for `plan`, made out to `user_id` (for someone else when `gift`)."""
    if not plan.sold_for_stars:
        raise ValueError(f"plan {plan.key!r} is not sold for Telegram Stars")
    if gift and plan.stars_subscription:
        raise ValueError(f"plan {plan.key!r} is a subscription and cannot be a gift")
    params = {
        "title": (f"Gift: {plan.title}" if gift else plan.title)[:32],
        "description": ((f"A gift for someone else: {plan.description or plan.title}" if gift else (plan.description or plan.title)))[:255],
        "payload": encode_payload(plan.key, user_id, gift=gift),
        "provider_token": "",  # Stars need no payment provider
        "currency": CURRENCY,
        "prices": [types.LabeledPrice(plan.title[:32], plan.stars)],
    }
    if plan.stars_subscription:
        params["subscription_period"] = STAR_SUBSCRIPTION_PERIOD
    return params


def create_invoice_link(bot: telebot.TeleBot, plan: Plan, user_id: int, *, gift: bool = False) -> str:
    """A t.me invoice link for `plan` (a Star subscription when the plan is one; a gift's when `gift`)."""
    return bot.create_invoice_link(**invoice_params(plan, user_id, gift=gift))


def send_invoice(bot: telebot.TeleBot, chat_id: int, plan: Plan, user_id: int, *, gift: bool = False) -> types.Message:
    """Send a one-off Stars invoice for `plan` into a chat (a gift's when `gift`)."""
    params = invoice_params(plan, user_id, gift=gift)
    if "subscription_period" in params:
        raise ValueError("sendInvoice cannot sell a subscription; use create_invoice_link")
    params["invoice_payload"] = params.pop("payload")
    return bot.send_invoice(chat_id, **params)


# -- pre-checkout --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The answer to a pre-checkout query: ok, or the message the payer sees and why."""

    ok: bool
    error_message: str | None = None
    reason: str | None = None
    plan: Plan | None = None

    def answer(self, query_id: str) -> dict:
        """The `answerPreCheckoutQuery` method call that carries this decision."""
        call = {"method": "answerPreCheckoutQuery", "pre_checkout_query_id": query_id, "ok": self.ok}
        if not self.ok:
            call["error_message"] = self.error_message
        return call


def _decline(reason: str, message: str, plan: Plan | None = None) -> Decision:
    return Decision(False, message, reason, plan)


def decide_pre_checkout(catalogue: Catalogue, query: types.PreCheckoutQuery) -> Decision:
    """Accept a checkout only for a known Stars plan, at its price in XTR, paid by the user the invoice was made for."""
    payload = decode_payload(query.invoice_payload)
    if payload is None:
        return _decline("bad_payload", "This invoice is no longer valid. Send /buy for a new one.")
    plan = catalogue.get(payload.plan)
    if plan is None or not plan.sold_for_stars:
        return _decline("unknown_plan", "This plan is no longer on sale. Send /buy to see what is.")
    if query.currency != CURRENCY:
        return _decline("wrong_currency", "This invoice can only be paid in Telegram Stars.", plan)
    if query.total_amount != plan.stars:
        return _decline("wrong_amount", "The price of this plan has changed. Send /buy for a new invoice.", plan)
    if query.from_user.id != payload.user_id:
        return _decline("wrong_payer", "This invoice was made for someone else. Send /buy for your own.", plan)
    return Decision(True, plan=plan)


# -- fulfilment ----------------------------------------------------------------------------


def is_gift(payment: types.SuccessfulPayment) -> bool:
    """True when the payment paid an invoice for a gift."""
    payload = decode_payload(payment.invoice_payload)
    return payload is not None and payload.gift


class PaymentMismatch(Exception):
    """A payment that is not what this service invoiced (plan, amount, currency, payer, period); it grants nothing."""


class UnknownPlan(PaymentMismatch):
    """A payment names a plan the catalogue does not have (or an invoice that is not ours)."""


# Telegram may charge a renewal a little before the period it pays for begins.
RENEWAL_LEEWAY = timedelta(days=1)
SUBSCRIPTION_PERIOD = timedelta(seconds=STAR_SUBSCRIPTION_PERIOD)


def subscription_id(payment: types.SuccessfulPayment) -> str:
    """The id under which a Star subscription's grants are kept: every renewal carries the first invoice's payload."""
    return f"{SOURCE}:{payment.invoice_payload}"


def _amounts_paid_before(subscription: str) -> set[int]:
    """What earlier payments of this subscription paid, so a renewal at the price subscribed to still grants."""
    references = Grant.select(Grant.reference).where((Grant.source == SOURCE) & (Grant.subscription_id == subscription))
    entries = LedgerEntry.select(LedgerEntry.detail).where(
        (LedgerEntry.source == SOURCE) & LedgerEntry.reference.in_(references) & LedgerEntry.action.in_(["grant", "extend"])
    )
    return {entry.detail.get("amount") for entry in entries if isinstance(entry.detail, dict)}


def _check_amount(plan: Plan, payment: types.SuccessfulPayment, renewal: bool) -> None:
    if payment.currency != CURRENCY:
        raise PaymentMismatch(f"the payment is in {payment.currency!r}, not {CURRENCY} (Telegram Stars)")
    if payment.total_amount == plan.stars:
        return
    # A Star subscription renews at the price it was bought at, even after the plan's price changed.
    if renewal and payment.total_amount in _amounts_paid_before(subscription_id(payment)):
        return
    raise PaymentMismatch(f"{payment.total_amount} Stars were paid, but plan {plan.key!r} costs {plan.stars}")


def check_payment(catalogue: Catalogue, payer_id: int, payment: types.SuccessfulPayment) -> tuple[Plan, bool]:
    """The plan a payment bought and whether it renews a subscription; PaymentMismatch unless it is what was invoiced."""
    payload = decode_payload(payment.invoice_payload)
    plan = catalogue.get(payload.plan) if payload else None
    if plan is None:
        raise UnknownPlan(f"invoice payload {payment.invoice_payload!r} names no plan in the catalogue")
    if not plan.sold_for_stars:
        raise PaymentMismatch(f"plan {plan.key!r} is not sold for Telegram Stars")
    renewal = bool(payment.is_recurring) and not payment.is_first_recurring
    _check_amount(plan, payment, renewal)
    if payload.user_id != payer_id:
        raise PaymentMismatch(f"the invoice was made out to user {payload.user_id}, but user {payer_id} paid it")
    return plan, renewal


def subscription_end(plan: Plan, payment: types.SuccessfulPayment, paid_at: datetime) -> datetime | None:
    """Where a subscription payment's grant ends (None: the plan grants by its days or for good).

    A lifetime plan ignores `subscription_expiration_date`; otherwise it must lie within one
    30-day period after the payment, or PaymentMismatch.
    """
    if plan.days is None or not payment.subscription_expiration_date:
        return None
    end = from_timestamp(payment.subscription_expiration_date)
    paid_at = min(paid_at, utcnow())
    if not paid_at < end <= paid_at + SUBSCRIPTION_PERIOD + RENEWAL_LEEWAY:
        raise PaymentMismatch(
            f"subscription_expiration_date {iso(end)} is not within one 30-day period of the payment at {iso(paid_at)}"
        )
    return end


def fulfil(catalogue: Catalogue, payer: types.User, payment: types.SuccessfulPayment, paid_at: datetime) -> Fulfilment:
    """Grant what a successful payment bought, once per charge, after checking it is what was invoiced.

    One-off plans grant `days` (extending what the payer holds) or lifetime; a subscription
    payment grants until its `subscription_expiration_date`, and each renewal is a grant of its own.
    A payment that is not what was invoiced raises PaymentMismatch and grants nothing.
    """
    plan, renewal = check_payment(catalogue, payer.id, payment)
    until = subscription_end(plan, payment, paid_at)
    charge_id = payment.telegram_payment_charge_id
    profile = users.profile_from_telegram(payer.to_dict())
    # Inside the caller's transaction the payer's row and the payment are locked as the row is written (the grant's locks).
    locked = database.in_transaction()
    if locked:
        user = users.lock_user(payer.id, payment=(SOURCE, charge_id), **profile)
    else:
        user = users.ensure_user(payer.id, **profile)
    detail = {"charge_id": charge_id, "amount": payment.total_amount, "currency": payment.currency, "renewal": renewal}
    if until is not None:
        # The subscription's record changes in the grant's transaction.
        with transaction() if not locked else contextlib.nullcontext():
            result = entitlements.grant(
                user,
                plan.entitlement,
                source=SOURCE,
                reference=charge_id,
                until=until,
                plan=plan.key,
                subscription_id=subscription_id(payment),
                detail=detail,
                locked=locked,
            )
            if result.created:
                subscriptions.observe_payment(
                    user, plan, provider=SOURCE, key=subscription_id(payment), period_end=until, charge_id=charge_id,
                    actor="telegram",
                )
    else:
        result = entitlements.grant(
            user, plan.entitlement, source=SOURCE, reference=charge_id, days=plan.days, plan=plan.key, detail=detail,
            locked=locked,
        )
    if result.created:
        metrics.telegram_payments.labels(result="renewed" if renewal else "paid").inc()
        metrics.telegram_payment_value.labels(currency=payment.currency).inc(payment.total_amount)
    return Fulfilment(user, plan, result.grant, result.created, renewal, result.held_until)


def until_text(end: datetime | None) -> str:
    """How long something is held, for messages: `for good` or `until 2030-01-31 12:00 UTC`."""
    if end is None or end == datetime.max:
        return "for good"
    return f"until {iso(end)[:16].replace('T', ' ')} UTC"


def confirmation_text(done: Fulfilment) -> str:
    """The message that thanks the payer and says what they now hold."""
    what = done.plan.title
    held = until_text(done.held_until or entitlements.current_end(done.user, done.plan.entitlement) or done.grant.ends_at)
    if done.renewal:
        first = f"Your subscription to {what} has renewed: {done.plan.entitlement} is yours {held}."
    else:
        first = f"Thank you! {what}: {done.plan.entitlement} is yours {held}."
    lines = [first]
    if done.subscription:
        lines.append("The subscription renews every 30 days; you can cancel it in your Telegram settings.")
    lines.append("Questions about this payment: /paysupport")
    return "\n".join(lines)
