"""The composition root of a payment's transaction.

The inbox runs a handler; the handler calls the entitlements service; what hangs off an
entitlement change — the holder's transitions (and through them chat access and reminders)
and the messages to the operator's backend — is wired here, so none of those modules imports
the service that triggers it and no module of the core imports another in a circle.
Every process calls `wire()` once before it changes grants (the runtime, the CLI, the tests).
"""
from __future__ import annotations

from datetime import datetime

from app import entitlements, inbox, subscription_actions
from app.access import transitions
from app.holdings import Known
from app.models import Grant, User
from app.ways import gifts
from app.webhooks import outbox


def _holding_changed(
    user_id: int, entitlement: str, *, now: datetime, locked_user: User | None, revoke_reason: str | None,
    known: Known | None = None,
) -> None:
    reason = transitions.end_reason(revoke_reason) if revoke_reason else "revoked"
    transitions.sync(user_id, entitlement, reason=reason, now=now, locked_user=locked_user, known=known)


def _payment_granted(user: User, grant: Grant, data: dict) -> None:
    outbox.emit("payment.succeeded", user, data, entitlement=grant.entitlement)


def _payment_reversed(user: User, data: dict, entitlement: str | None) -> None:
    outbox.emit("payment.refunded", user, data, entitlement=entitlement)
    # A gift's payment granted its buyer nothing: the refund voids the gift, or revokes what its recipient got.
    gifts.payment_reversed(data["source"], data["reference"])


def _edit_star_subscription(settings, telegram_id: int, charge_id: str, canceled: bool) -> None:
    import requests
    from telebot.apihelper import ApiException

    from app.telegram import client as telegram_client

    try:
        telegram_client.client_for(settings).edit_user_star_subscription(telegram_id, charge_id, is_canceled=canceled)
    except telegram_client.NotConfigured as exc:
        raise subscription_actions.ProviderFailed("telegram", str(exc), configured=False) from None
    except (ApiException, requests.RequestException) as exc:
        raise subscription_actions.ProviderFailed(
            "telegram", f"editUserStarSubscription failed: {telegram_client.describe_error(exc)}") from None


def wire() -> None:
    """Hang transitions and the outbox off the entitlements service, and teach the inbox the service's outcomes (idempotent)."""
    hooks = entitlements.hooks
    hooks.holding_changed = _holding_changed
    hooks.payment_granted = _payment_granted
    hooks.payment_reversed = _payment_reversed
    subscription_actions.edit_star_subscription = _edit_star_subscription
    inbox.ignore_also(entitlements.PaymentReversed)
