"""Reading Stripe objects as they arrive: plain dicts or stripe-python objects, in either API shape.

Since 2025-03-31.basil an invoice names its subscription at `parent.subscription_details`, its
payments are the includable list `payments.data[].payment.payment_intent`, and a subscription's
period lives on its items; webhook endpoints pinned to an older API version still send the
earlier shape (`invoice.subscription`, `invoice.payment_intent`, `current_period_end` on the
subscription), so every reader here understands both.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.text import ascii_int

__all__ = [
    "METADATA_KEY",
    "charged",
    "expandable_id",
    "invoice_payment_intent_id",
    "invoice_period_end",
    "invoice_subscription_id",
    "payer_of",
    "subscription_period_end",
]

# The metadata key under which entitle writes the payer's Telegram id on Stripe objects.
METADATA_KEY = "telegram_user_id"
MAX_TELEGRAM_ID = 2**53 - 1


def _plain(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else obj


def expandable_id(value: Any) -> str | None:
    """The id in an expandable field, whether it holds an id or an expanded object."""
    value = _plain(value)
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) and found else None
    return None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _lines(inv: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = _get(inv, "lines", "data")
    return [line for line in data if isinstance(line, Mapping)] if isinstance(data, list) else []


def _line_subscription(line: Mapping[str, Any]) -> str | None:
    return expandable_id(_get(line, "parent", "subscription_item_details", "subscription")) or expandable_id(
        line.get("subscription")
    )


def invoice_subscription_id(inv: Any) -> str | None:
    """The subscription an invoice bills: `parent.subscription_details.subscription`, else the legacy fields."""
    inv = _plain(inv)
    if not isinstance(inv, Mapping):
        return None
    found = expandable_id(_get(inv, "parent", "subscription_details", "subscription")) or expandable_id(
        inv.get("subscription")
    )
    if found:
        return found
    for line in _lines(inv):
        found = _line_subscription(line)
        if found:
            return found
    return None


def invoice_payment_intent_id(inv: Any) -> str | None:
    """The PaymentIntent that paid an invoice: from `payments` (when included), else the legacy `payment_intent`."""
    inv = _plain(inv)
    if not isinstance(inv, Mapping):
        return None
    payments = _get(inv, "payments", "data")
    if isinstance(payments, list):
        ranked = sorted(
            (p for p in payments if isinstance(p, Mapping)),
            key=lambda p: (p.get("status") != "paid", not p.get("is_default")),
        )
        for p in ranked:
            found = expandable_id(_get(p, "payment", "payment_intent"))
            if found:
                return found
    return expandable_id(inv.get("payment_intent"))


def invoice_period_end(inv: Any) -> int | None:
    """When the period an invoice pays for ends: the latest `period.end` of its subscription lines (else of any line)."""
    inv = _plain(inv)
    if not isinstance(inv, Mapping):
        return None
    lines = _lines(inv)
    subscription_lines = [line for line in lines if _line_subscription(line)]
    ends = [_get(line, "period", "end") for line in (subscription_lines or lines)]
    ends = [int(e) for e in ends if isinstance(e, (int, float)) and not isinstance(e, bool)]
    return max(ends) if ends else None


def subscription_period_end(sub: Any) -> int | None:
    """When a subscription's current period ends: the latest item `current_period_end`, else the legacy top-level field."""
    sub = _plain(sub)
    if not isinstance(sub, Mapping):
        return None
    items = _get(sub, "items", "data")
    ends = [i.get("current_period_end") for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    ends = [int(e) for e in ends if isinstance(e, (int, float)) and not isinstance(e, bool)]
    if ends:
        return max(ends)
    legacy = sub.get("current_period_end")
    return int(legacy) if isinstance(legacy, (int, float)) and not isinstance(legacy, bool) else None


def _subscription_details(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    details = _get(obj, "parent", "subscription_details") or obj.get("subscription_details")
    return details if isinstance(details, Mapping) else {}


def payer_of(obj: Any) -> int | None:
    """The payer's Telegram id an object names: `client_reference_id`, else its metadata, else its subscription's metadata (invoices)."""
    obj = _plain(obj)
    if not isinstance(obj, Mapping):
        return None
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    subscription_metadata = _subscription_details(obj).get("metadata")
    if not isinstance(subscription_metadata, Mapping):
        subscription_metadata = {}
    for candidate in (obj.get("client_reference_id"), metadata.get(METADATA_KEY), subscription_metadata.get(METADATA_KEY)):
        text = str(candidate or "")
        if text:
            # ASCII digits only (`isdigit` takes `²` and `١٢`), and an id Telegram could have given.
            value = ascii_int(text)
            return value if value is not None and 0 < value <= MAX_TELEGRAM_ID else None
    return None


def charged(obj: Any, field: str) -> dict:
    """`{"amount", "currency"}` an object charged: its integer `field` (`amount_total` of a Checkout Session,
    `amount_paid` of an invoice) in the currency's minor unit, and its `currency` as Stripe writes it (`eur`);
    empty when it names no such amount."""
    obj = _plain(obj)
    if not isinstance(obj, Mapping):
        return {}
    amount, currency = obj.get(field), obj.get("currency")
    if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str) or not currency:
        return {}
    return {"amount": amount, "currency": currency}
