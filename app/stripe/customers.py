"""One Stripe customer per user, created on first need and remembered on the user."""
from __future__ import annotations

import logging

import peewee
import stripe

from app.db import transaction
from app.models import User
from app.stripe.objects import METADATA_KEY, expandable_id, payer_of

log = logging.getLogger(__name__)

__all__ = ["METADATA_KEY", "ensure_customer", "idempotency_key", "link_customer", "user_for_customer", "event_subject"]


def idempotency_key(user: User) -> str:
    """The key that makes concurrent first purchases of one user create one customer."""
    return f"customer-{user.telegram_id}"


def ensure_customer(client: stripe.StripeClient, user: User) -> str:
    """The user's Stripe customer id, creating the customer (Telegram id in its metadata) the first time."""
    if user.stripe_customer_id:
        return user.stripe_customer_id
    # Parameters stay the same for every call of one user, so Stripe replays the first
    # answer to a concurrent or retried request instead of refusing the reused key.
    customer = client.v1.customers.create(
        params={"description": f"Telegram user {user.telegram_id}", "metadata": {METADATA_KEY: str(user.telegram_id)}},
        options={"idempotency_key": idempotency_key(user)},
    )
    link_customer(user, customer.id)
    return user.stripe_customer_id


def link_customer(user: User, customer_id: str | None) -> None:
    """Remember a customer id on a user who has none yet (the first one stored wins)."""
    if not customer_id or user.stripe_customer_id:
        return
    try:
        with transaction():
            User.update(stripe_customer_id=customer_id).where(
                (User.id == user.id) & User.stripe_customer_id.is_null()
            ).execute()
    except peewee.IntegrityError:
        log.warning("Stripe customer %s already belongs to another user; not linked to %s", customer_id, user.telegram_id)
    user.stripe_customer_id = User.get_by_id(user.id).stripe_customer_id


def user_for_customer(customer) -> User | None:
    """The user a Stripe customer (id or object) belongs to, or None."""
    customer_id = expandable_id(customer)
    return User.get_or_none(User.stripe_customer_id == customer_id) if customer_id else None


def event_subject(event: dict) -> int | None:
    """The Telegram user a Stripe event is about: the payer its object names, else its customer's user."""
    obj = (event.get("data") or {}).get("object")
    if not isinstance(obj, dict):
        return None
    payer = payer_of(obj)
    if payer is not None:
        return payer
    user = user_for_customer(expandable_id(obj.get("customer")))
    return user.telegram_id if user is not None else None
