"""Refunds of Telegram Stars payments: the operator's, and the ones Telegram reports."""
from __future__ import annotations

from dataclasses import dataclass, field

import requests
import telebot
from telebot.apihelper import ApiException, ApiTelegramException

from app import entitlements, metrics, users
from app.models import Event, Grant
from app.telegram import SOURCE
from app.telegram.client import describe_error

ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"


class UnknownPayment(Exception):
    """No payment with this charge id was ever recorded here."""


@dataclass(frozen=True)
class Charge:
    """A Stars payment known here: its charge id, payer, grant (if any) and whether it was a subscription's."""

    charge_id: str
    user_id: int
    grant: Grant | None
    subscription: bool
    amount: int | None


def find_charge(charge_id: str) -> Charge | None:
    """What is known of a Stars payment (payer, grant, whether it is a subscription's), or None."""
    grant = entitlements.find_grant(SOURCE, charge_id)
    event = Event.get_or_none(
        (Event.provider == SOURCE) & (Event.external_id == charge_id) & (Event.type == "successful_payment")
    )
    message = (event.payload.get("message") or {}) if event else {}
    payment = message.get("successful_payment") or {}
    if grant is not None:
        user_id = grant.user.telegram_id
    elif message.get("from"):
        user_id = int(message["from"]["id"])
    else:
        return None
    subscription = grant.subscription_id is not None if grant else bool(payment.get("subscription_expiration_date"))
    return Charge(charge_id, user_id, grant, subscription, payment.get("total_amount"))


@dataclass
class RefundResult:
    """What an operator refund did: refunded now or before, and the grants it revoked."""

    charge: Charge
    refunded: bool = False
    already_refunded: bool = False
    revoked: list[Grant] = field(default_factory=list)
    renewal_canceled: bool | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when Telegram did everything asked of it."""
        return not self.errors


def refund_payment(client: telebot.TeleBot, charge_id: str, *, actor: str = "operator") -> RefundResult:
    """Refund a Stars payment, revoke its grant, and stop a subscription's renewals.

    Nothing changes when Telegram refuses the refund, except that an already refunded
    charge still has its grant revoked (and its subscription cancelled).
    """
    charge = find_charge(charge_id)
    if charge is None:
        raise UnknownPayment(f"no Telegram payment with charge id {charge_id} is recorded here")
    result = RefundResult(charge)
    try:
        client.refund_star_payment(charge.user_id, charge_id)
        result.refunded = True
    except ApiTelegramException as exc:
        if ALREADY_REFUNDED not in str(exc.description or ""):
            result.errors.append(describe_error(exc))
            return result
        result.already_refunded = True  # not a failure: what was asked for is done
    except (ApiException, requests.RequestException) as exc:
        result.errors.append(describe_error(exc) + "; the refund may not have happened: run the command again")
        return result
    result.revoked = entitlements.revoke_payment(
        SOURCE,
        charge_id,
        reason="refund",
        actor=actor,
        user=users.find_user(charge.user_id),
        detail={"amount": charge.amount, "already_refunded": result.already_refunded},
    )
    if result.refunded or result.revoked:
        metrics.telegram_payments.labels(result="refunded").inc()
    if charge.subscription:
        # The Bot API names a subscription by any of its charges.
        try:
            client.edit_user_star_subscription(charge.user_id, charge_id, is_canceled=True)
            result.renewal_canceled = True
        except (ApiException, requests.RequestException) as exc:
            result.renewal_canceled = False
            result.errors.append(f"cancelling the subscription's renewal failed: {describe_error(exc)}; run the command again")
    return result
