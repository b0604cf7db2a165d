"""Prometheus metrics. Set PROMETHEUS_MULTIPROC_DIR before import to aggregate across processes.

prometheus-client writes one file per process into that directory and fails if it is
missing; this module creates nothing. The Procfile's lines make it, `workers.main` makes it
before it imports anything, and `/metrics` makes it when no process has written there yet.
`app.host_metrics` serves these samples labelled with their host, beside other hosts' (docs/SCALING.md).
"""
from __future__ import annotations

from typing import Collection

from prometheus_client import Counter, Histogram

OTHER = "other"

# The Stripe event types the service handles (the README's list), and the type of a delivery it could not verify.
STRIPE_EVENT_TYPES = frozenset(
    {
        "checkout.session.completed", "checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed",
        "invoice.paid", "invoice.payment_failed", "customer.subscription.created", "customer.subscription.updated",
        "customer.subscription.deleted", "charge.refunded", "charge.dispute.created", "unverified",
    }
)
CURRENCIES = frozenset({"XTR"})


def currency_code(value: object) -> str:
    """A three-letter currency code as a label (lower case, as Stripe writes it), else `other`."""
    text = str(value or "").lower()
    return text if len(text) == 3 and text.isascii() and text.isalpha() else OTHER


def known_or_other(value: object, known: Collection[str]) -> str:
    """The value as a label if it is one of `known`, else `other`: labels never carry unchecked input."""
    text = str(value)
    return text if text in known else OTHER


class Bounded:
    """A labelled metric whose named labels take values only from known sets; anything else counts as `other`."""

    def __init__(self, metric, **known: Collection[str]):
        self.metric = metric
        self.known = known

    def labels(self, **values: object):
        """The child for these label values, each unknown one replaced by `other`."""
        safe = {name: known_or_other(v, self.known[name]) if name in self.known else v for name, v in values.items()}
        return self.metric.labels(**safe)

    def __getattr__(self, name: str):
        return getattr(self.metric, name)

telegram_payments = Counter("telegram_payments", "Telegram Stars payments by result.", ["result"])
telegram_payment_value = Bounded(
    Counter("telegram_payment_value", "Value of Telegram payments received.", ["currency"]), currency=CURRENCIES
)
stripe_payment_value = Counter(
    "stripe_payment_value", "Value of Stripe payments granted, in the currency's minor unit as Stripe counts it.", ["currency"]
)


def count_stripe_payment(amount: object, currency: object) -> None:
    """Add a granted Stripe payment's amount (minor units) to the revenue counter; a missing amount adds nothing."""
    if isinstance(amount, int) and amount > 0:
        stripe_payment_value.labels(currency=currency_code(currency)).inc(amount)


miniapp_sessions = Counter("miniapp_sessions", "Mini App sessions issued.")
miniapp_session_failures = Counter("miniapp_session_failures", "Mini App sign-ins refused, by reason.", ["reason"])
miniapp_exchange_latency = Histogram(
    "miniapp_exchange_latency_seconds",
    "Time to exchange initData for a session token.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
stripe_webhooks = Bounded(
    Counter("stripe_webhooks", "Stripe webhook deliveries by event type (known ones, else `other`) and result.", ["type", "result"]),
    type=STRIPE_EVENT_TYPES,
)
webhook_requests = Counter("webhook_requests", "Webhook HTTP requests by provider and status.", ["provider", "status"])
events_processed = Counter("events_processed", "Inbox events run by a worker, by result.", ["provider", "result"])
event_processing_seconds = Histogram(
    "event_processing_seconds", "Time a worker spends on one inbox event.", ["provider"]
)
entitlements_granted = Counter("entitlements_granted", "Grants created, by source.", ["source"])
trials_started = Counter("trials_started", "Free trials started (a card subscription's trial when its Checkout Session is made).")
promo_redemptions = Bounded(
    Counter("promo_redemptions", "Promo code redemptions, by result: redeemed, or why it was refused.", ["result"]),
    result=frozenset({"redeemed", "unknown", "expired", "used_up", "already_used", "not_for_you", "disabled", "too_many"}),
)
gifts = Bounded(
    Counter("gifts", "Gifts by what happened: bought, redeemed, voided (refunded before redemption), revoked (after).", ["state"]),
    state=frozenset({"bought", "redeemed", "voided", "revoked"}),
)
webhook_deliveries = Bounded(
    Counter("webhook_deliveries", "Outgoing webhook attempts by result: delivered, retrying, failed.", ["result"]),
    result=frozenset({"delivered", "retrying", "failed"}),
)
entitlements_revoked = Counter("entitlements_revoked", "Grants revoked, by source and reason.", ["source", "reason"])
entitlement_transitions = Bounded(
    Counter("entitlement_transitions", "Entitlement transitions written, by kind.", ["kind"]),
    kind=frozenset({"started", "extended", "ended"}),
)
chat_access = Bounded(
    Counter("chat_access", "Telegram chat access actions, by action and result.", ["action", "result"]),
    action=frozenset({
        "invite", "approve", "decline", "remove", "reminder", "audit", "query_approved", "query_declined", "query_queued",
        "paywall_shown", "paywall_paid", "emoji_status",
    }),
    result=frozenset({"ok", "skipped", "admin", "failed", "retry", "not_configured"}),
)
subscription_changes = Bounded(
    Counter("subscription_changes", "Subscription state changes, by provider and the state entered.", ["provider", "state"]),
    provider=frozenset({"telegram", "stripe"}), state=frozenset({"active", "canceled", "past_due", "ended"}),
)
# What reconciliation found in a provider's ledger that the inbox lacked: Stars payments and refunds, Stripe event types.
RECONCILE_KINDS = frozenset({"payment", "refund"}) | (STRIPE_EVENT_TYPES - {"unverified"})
reconcile_found = Bounded(
    Counter("reconcile_found", "Ledger entries reconciliation found missing from the inbox, by provider and kind.", ["provider", "kind"]),
    provider=frozenset({"telegram", "stripe"}), kind=RECONCILE_KINDS,
)
