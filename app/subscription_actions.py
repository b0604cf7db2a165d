"""Cancel and resume a subscription at its provider, for the payer (bot, Mini App) or the operator (CLI).

Stars: `editUserStarSubscription` with the subscription's latest charge. `is_canceled=true` stops
renewals, access stays to the period end; `is_canceled=false` lifts only a cancellation this
service made (Telegram's documentation: it re-allows a subscription "previously canceled by the
bot"), so one the payer canceled in Telegram is re-enabled by the payer, in Telegram.
Card: Stripe's `cancel_at_period_end` true or false; `end_now` cancels at Stripe at once.
The provider is asked first; the record changes only when it agreed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import stripe

from app import entitlements, subscriptions
from app.clock import utcnow
from app.db import transaction
from app.models import Grant, Subscription
from app.stripe import client as stripe_client


class Refused(Exception):
    """The action cannot be done on this subscription; `message` says why in the payer's words."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ProviderFailed(Exception):
    """Telegram or Stripe did not do what was asked (or is not configured); nothing changed here."""

    def __init__(self, provider: str, message: str, *, configured: bool = True):
        super().__init__(message)
        self.provider = provider
        self.configured = configured


@dataclass(frozen=True)
class Outcome:
    """The subscription after the action, and whether the action changed it (False: it already was so)."""

    subscription: Subscription
    changed: bool


# editUserStarSubscription as the Bot API client of the settings calls it: (settings, telegram_id, charge_id, canceled).
# Wired by `app.composition`, so this module needs nothing of the Telegram package (which uses it for /cancel).
edit_star_subscription: Callable[..., None] | None = None


def _telegram_edit(settings, row: Subscription, *, canceled: bool) -> None:
    if not row.charge_id:
        raise ProviderFailed("telegram", f"subscription {row.id} has no recorded charge to name to Telegram")
    if edit_star_subscription is None:
        raise RuntimeError("subscription actions are not wired: call app.composition.wire() first")
    edit_star_subscription(settings, row.user.telegram_id, row.charge_id, canceled)


def _stripe_call(settings, fn):
    try:
        return fn(stripe_client.client_for(settings))
    except stripe_client.NotConfigured as exc:
        raise ProviderFailed("stripe", str(exc), configured=False) from None
    except stripe.StripeError as exc:
        raise ProviderFailed("stripe", f"Stripe refused: {stripe_client.describe_error(exc)}") from None


def _set_cancel_at_period_end(settings, row: Subscription, flag: bool) -> dict:
    return _stripe_call(
        settings,
        lambda client: stripe_client.plain(client.v1.subscriptions.update(row.key, params={"cancel_at_period_end": flag})),
    )


def _fresh(row: Subscription) -> Subscription:
    return Subscription.get_by_id(row.id)


def cancel(settings, row: Subscription, *, actor: str) -> Outcome:
    """Stop a subscription's renewals; it stays held to its period end. A second cancel changes nothing."""
    if row.state == subscriptions.ENDED:
        raise Refused("subscription_ended", "This subscription has already ended.")
    if row.state == subscriptions.CANCELED:
        return Outcome(row, False)
    if row.provider == "telegram":
        _telegram_edit(settings, row, canceled=True)
    else:
        _set_cancel_at_period_end(settings, row, True)
    if row.state == subscriptions.PAST_DUE:
        # A failed renewal that the payer gives up: it ends now, and its grace with it.
        return Outcome(*_end(row, actor=actor, reason="canceled"))
    changed = subscriptions.move(
        row, subscriptions.CANCELED, actor=actor, reason=f"canceled_by_{actor}", canceled_by=subscriptions.BY_SERVICE
    )
    return Outcome(_fresh(row), changed)


def resume(settings, row: Subscription, *, actor: str) -> Outcome:
    """Let a canceled subscription renew again. A second resume changes nothing."""
    if row.state == subscriptions.ACTIVE:
        return Outcome(row, False)
    if row.state == subscriptions.ENDED:
        raise Refused("subscription_ended", "This subscription has ended; subscribe again with /buy.")
    if row.state == subscriptions.PAST_DUE:
        raise Refused("subscription_past_due", "The last renewal could not be charged; pay it at your provider, or subscribe again.")
    if row.provider == "telegram":
        if row.canceled_by == subscriptions.BY_PAYER:
            raise Refused(
                "resume_in_telegram",
                "You canceled this subscription in Telegram, so only you can turn it back on there: Settings → My Stars.",
            )
        _telegram_edit(settings, row, canceled=False)
    else:
        _set_cancel_at_period_end(settings, row, False)
    changed = subscriptions.move(row, subscriptions.ACTIVE, actor=actor, reason=f"resumed_by_{actor}", canceled_by=None)
    return Outcome(_fresh(row), changed)


def _end(row: Subscription, *, actor: str, reason: str) -> tuple[Subscription, bool]:
    """Revoke what the subscription grants from now on, and mark it ended, in one transaction."""
    with transaction():
        now = utcnow()
        running = Grant.select().where(
            (Grant.subscription_id == row.key) & Grant.revoked_at.is_null() & (Grant.ends_at.is_null() | (Grant.ends_at > now))
        )
        for grant in list(running):
            entitlements.revoke_reference(grant.source, grant.reference, reason="canceled", actor=actor)
        changed = subscriptions.move(row, subscriptions.ENDED, actor=actor, reason=reason)
    return _fresh(row), changed


def end_now(settings, row: Subscription, *, actor: str = "operator") -> Outcome:
    """End a subscription at once, with its grant, without a refund: no renewal, no access left."""
    if row.state == subscriptions.ENDED:
        return Outcome(row, False)
    if row.provider == "telegram":
        if row.state != subscriptions.CANCELED:
            _telegram_edit(settings, row, canceled=True)
    else:
        _stripe_call(settings, lambda client: client.v1.subscriptions.cancel(row.key))
    return Outcome(*_end(row, actor=actor, reason="ended_now"))
