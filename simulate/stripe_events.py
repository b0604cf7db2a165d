"""Stripe objects and events as Stripe sends them, for tests, benchmarks and `entitle simulate stripe …`.

The shapes follow Stripe's own fixtures (stripe/openapi `openapi/fixtures3.json`) and the API
reference for the API version stripe-python pins (`stripe.api_version`, 2025-03-31.basil or
later): an invoice names its subscription at `parent.subscription_details.subscription`, its
payments are the includable list `payments.data[].payment.payment_intent`, a line's price is
`lines.data[].pricing.price_details.price`, and a subscription's period sits on its items.
`app.stripe.objects` reads them. Every builder returns a fresh plain dict that `json.dumps` accepts.
"""
from __future__ import annotations

import copy
import secrets
import string
import time
from collections.abc import Mapping
from typing import Any

import stripe

__all__ = [
    "charge",
    "checkout_session",
    "checkout_session_id",
    "customer",
    "dispute",
    "event",
    "invoice",
    "invoice_payment",
    "new_id",
    "payment_intent",
    "price",
    "refund",
    "subscription",
]

DAY = 86400
PERIOD_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A fresh Stripe-looking id such as `evt_1Pgc76B7WZ01zgkWwyRHS12y`."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def checkout_session_id(livemode: bool = False) -> str:
    """A fresh Checkout Session id (`cs_test_a1…`, 66 characters after `cs_test_`)."""
    return f"cs_{'live' if livemode else 'test'}_a1" + "".join(secrets.choice(_ALPHABET) for _ in range(58))


def _now(created: int | None) -> int:
    return int(time.time()) if created is None else int(created)


def event(
    type: str,
    obj: Mapping[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    livemode: bool = False,
    api_version: str | None = None,
    previous_attributes: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    pending_webhooks: int = 1,
) -> dict:
    """A snapshot event (`object: "event"`) carrying a copy of `obj` as `data.object`."""
    data: dict[str, Any] = {"object": copy.deepcopy(dict(obj))}
    if previous_attributes is not None:
        data["previous_attributes"] = copy.deepcopy(dict(previous_attributes))
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": api_version or stripe.api_version,
        "created": _now(created),
        "data": data,
        "livemode": livemode,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": type,
    }


def customer(
    *,
    customer_id: str | None = None,
    email: str | None = None,
    name: str | None = None,
    description: str | None = None,
    phone: str | None = None,
    metadata: Mapping[str, str] | None = None,
    created: int | None = None,
    livemode: bool = False,
) -> dict:
    """A Customer object."""
    return {
        "id": customer_id or new_id("cus", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": _now(created),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": description,
        "email": email,
        "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8)),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "name": name,
        "next_invoice_sequence": 1,
        "phone": phone,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def price(
    *,
    price_id: str | None = None,
    unit_amount: int | None = 500,
    currency: str = "usd",
    interval: str | None = "month",
    interval_count: int = 1,
    product: str | None = None,
    lookup_key: str | None = None,
    metadata: Mapping[str, str] | None = None,
    created: int | None = None,
    livemode: bool = False,
) -> dict:
    """A Price object; `interval=None` makes a one-time price."""
    return {
        "id": price_id or new_id("price"),
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": _now(created),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": livemode,
        "lookup_key": lookup_key,
        "metadata": dict(metadata or {}),
        "nickname": None,
        "product": product or new_id("prod", 14),
        "recurring": None
        if interval is None
        else {
            "interval": interval,
            "interval_count": interval_count,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time" if interval is None else "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }


def checkout_session(
    *,
    session_id: str | None = None,
    mode: str = "payment",
    payment_status: str = "paid",
    status: str | None = None,
    customer: str | None = None,
    customer_email: str | None = None,
    client_reference_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    payment_intent: str | None = None,
    subscription: str | None = None,
    invoice: str | None = None,
    amount_total: int | None = 500,
    currency: str = "usd",
    success_url: str | None = "http://127.0.0.1:8000/checkout/success?session_id={CHECKOUT_SESSION_ID}",
    cancel_url: str | None = "http://127.0.0.1:8000/app",
    created: int | None = None,
    livemode: bool = False,
) -> dict:
    """A Checkout Session; a completed one gets a fresh `payment_intent` (payment mode) or `subscription` and `invoice` (subscription mode) unless given."""
    created = _now(created)
    if status is None:
        status = "complete" if payment_status in ("paid", "no_payment_required") else "open"
    session_id = session_id or checkout_session_id(livemode)
    if status == "complete":
        if mode == "payment" and payment_intent is None:
            payment_intent = new_id("pi")
        if mode == "subscription":
            subscription = subscription or new_id("sub")
            invoice = invoice or new_id("in")
    return {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_creation": None if customer else "if_required",
        "customer_details": None
        if status != "complete"
        else {
            "address": None,
            "email": customer_email or "payer@example.com",
            "name": None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "customer_email": customer_email,
        "discounts": [],
        "expires_at": created + DAY,
        "invoice": invoice,
        "invoice_creation": None
        if mode != "payment"
        else {"enabled": False, "invoice_data": {"account_tax_ids": None, "custom_fields": None, "description": None, "footer": None, "issuer": None, "metadata": {}, "rendering_options": None}},
        "livemode": livemode,
        "locale": None,
        "metadata": dict(metadata or {}),
        "mode": mode,
        "payment_intent": payment_intent,
        "payment_link": None,
        "payment_method_collection": "if_required" if mode == "payment" else "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": payment_status,
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": status,
        "submit_type": None,
        "subscription": subscription,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": f"https://checkout.stripe.com/c/pay/{session_id}" if status == "open" else None,
        "wallet_options": None,
    }


def payment_intent(
    *,
    payment_intent_id: str | None = None,
    amount: int = 500,
    currency: str = "usd",
    customer: str | None = None,
    status: str = "succeeded",
    latest_charge: str | None = None,
    metadata: Mapping[str, str] | None = None,
    description: str | None = None,
    created: int | None = None,
    livemode: bool = False,
) -> dict:
    """A PaymentIntent; a succeeded one gets a fresh `latest_charge` unless given."""
    pi_id = payment_intent_id or new_id("pi")
    if status == "succeeded" and latest_charge is None:
        latest_charge = new_id("ch")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount if status == "succeeded" else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_" + "".join(secrets.choice(_ALPHABET) for _ in range(25)),
        "confirmation_method": "automatic",
        "created": _now(created),
        "currency": currency,
        "customer": customer,
        "description": description,
        "last_payment_error": None,
        "latest_charge": latest_charge,
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": new_id("pm") if status == "succeeded" else None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def charge(
    *,
    charge_id: str | None = None,
    payment_intent: str | None = None,
    customer: str | None = None,
    amount: int = 500,
    amount_refunded: int = 0,
    refunded: bool | None = None,
    currency: str = "usd",
    status: str = "succeeded",
    disputed: bool = False,
    metadata: Mapping[str, str] | None = None,
    created: int | None = None,
    livemode: bool = False,
) -> dict:
    """A Charge; `refunded` defaults to whether `amount_refunded` covers `amount`."""
    if refunded is None:
        refunded = amount_refunded >= amount > 0
    charge_id = charge_id or new_id("ch")
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if status == "succeeded" else 0,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn") if status == "succeeded" else None,
        "billing_details": {"address": None, "email": None, "name": None, "phone": None, "tax_id": None},
        "calculated_statement_descriptor": "ENTITLE",
        "captured": status == "succeeded",
        "created": _now(created),
        "currency": currency,
        "customer": customer,
        "description": None,
        "disputed": disputed,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": status == "succeeded",
        "payment_intent": payment_intent,
        "payment_method": new_id("pm"),
        "payment_method_details": {
            "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034, "funding": "credit", "last4": "4242", "network": "visa"},
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{charge_id}",
        "refunded": refunded,
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(
    *,
    refund_id: str | None = None,
    payment_intent: str | None = None,
    charge: str | None = None,
    amount: int = 500,
    currency: str = "usd",
    status: str = "succeeded",
    reason: str | None = None,
    metadata: Mapping[str, str] | None = None,
    created: int | None = None,
) -> dict:
    """A Refund."""
    return {
        "id": refund_id or new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn") if status == "succeeded" else None,
        "charge": charge,
        "created": _now(created),
        "currency": currency,
        "destination_details": {"card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"}, "type": "card"},
        "metadata": dict(metadata or {}),
        "payment_intent": payment_intent,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def dispute(
    *,
    dispute_id: str | None = None,
    charge: str | None = None,
    payment_intent: str | None = None,
    amount: int = 500,
    currency: str = "usd",
    reason: str = "fraudulent",
    status: str = "needs_response",
    metadata: Mapping[str, str] | None = None,
    created: int | None = None,
    livemode: bool = False,
) -> dict:
    """A Dispute on a charge."""
    created = _now(created)
    return {
        "id": dispute_id or new_id("dp"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge or new_id("ch"),
        "created": created,
        "currency": currency,
        "enhanced_eligibility_types": [],
        "evidence": {},
        "evidence_details": {"due_by": created + 21 * DAY, "enhanced_eligibility": {}, "has_evidence": False, "past_due": False, "submission_count": 0},
        "is_charge_refundable": False,
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "payment_intent": payment_intent,
        "payment_method_details": {"card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"}, "type": "card"},
        "reason": reason,
        "status": status,
    }


def _price_object(value: str | Mapping[str, Any] | None, currency: str, unit_amount: int, interval: str | None) -> dict:
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    return price(price_id=value, currency=currency, unit_amount=unit_amount, interval=interval)


def subscription(
    *,
    subscription_id: str | None = None,
    customer: str | None = None,
    status: str = "active",
    price: str | Mapping[str, Any] | None = None,
    unit_amount: int = 500,
    currency: str = "usd",
    interval: str = "month",
    quantity: int = 1,
    current_period_start: int | None = None,
    current_period_end: int | None = None,
    metadata: Mapping[str, str] | None = None,
    cancel_at_period_end: bool = False,
    cancel_at: int | None = None,
    canceled_at: int | None = None,
    ended_at: int | None = None,
    latest_invoice: str | None = None,
    created: int | None = None,
    livemode: bool = False,
) -> dict:
    """A Subscription with one item; the period sits on the item."""
    created = _now(created)
    start = created if current_period_start is None else int(current_period_start)
    end = start + PERIOD_DAYS.get(interval, 30) * DAY if current_period_end is None else int(current_period_end)
    sub_id = subscription_id or new_id("sub")
    price_obj = _price_object(price, currency, unit_amount, interval)
    if cancel_at_period_end and cancel_at is None:
        cancel_at = end
    item: dict[str, Any] = {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "discounts": [],
        "metadata": {},
        "price": price_obj,
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
        "current_period_start": start,
        "current_period_end": end,
    }
    sub: dict[str, Any] = {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": start,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic"},
        "billing_thresholds": None,
        "cancel_at": cancel_at,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": created,
        "currency": price_obj.get("currency", currency),
        "customer": customer or new_id("cus", 14),
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": ended_at,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {"object": "list", "data": [item], "has_more": False, "total_count": 1, "url": f"/v1/subscription_items?subscription={sub_id}"},
        "latest_invoice": latest_invoice,
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None, "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": created,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }
    return sub


def invoice_payment(
    *,
    invoice: str,
    payment_intent: str,
    amount: int = 500,
    currency: str = "usd",
    status: str = "paid",
    created: int | None = None,
    livemode: bool = False,
) -> dict:
    """An InvoicePayment linking an invoice to the PaymentIntent that paid it."""
    created = _now(created)
    return {
        "id": new_id("inpay"),
        "object": "invoice_payment",
        "amount_paid": amount if status == "paid" else None,
        "amount_requested": amount,
        "created": created,
        "currency": currency,
        "invoice": invoice,
        "is_default": True,
        "livemode": livemode,
        "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        "status": status,
        "status_transitions": {"canceled_at": None, "paid_at": created if status == "paid" else None},
    }


def invoice(
    *,
    invoice_id: str | None = None,
    customer: str | None = None,
    subscription: str | None = None,
    subscription_item: str | None = None,
    subscription_metadata: Mapping[str, str] | None = None,
    price: str | Mapping[str, Any] | None = None,
    billing_reason: str | None = None,
    status: str = "paid",
    amount: int = 500,
    currency: str = "usd",
    interval: str = "month",
    period_start: int | None = None,
    period_end: int | None = None,
    payment_intent: str | None = None,
    metadata: Mapping[str, str] | None = None,
    created: int | None = None,
    livemode: bool = False,
) -> dict:
    """An Invoice with one line (a subscription line when `subscription` is given), in the shape the module notes describe."""
    created = _now(created)
    inv_id = invoice_id or new_id("in")
    customer = customer or new_id("cus", 14)
    if billing_reason is None:
        billing_reason = "subscription_create" if subscription else "manual"
    line_start = created if period_start is None else int(period_start)
    line_end = line_start + PERIOD_DAYS.get(interval, 30) * DAY if period_end is None else int(period_end)
    price_obj = _price_object(price, currency, amount, interval if subscription else None)
    paid = status == "paid"
    if subscription:
        subscription_item = subscription_item or new_id("si", 14)
    # For a renewal the invoice's own period is the one that just ended; the line covers the next.
    inv_period_start = line_start - (line_end - line_start) if billing_reason == "subscription_cycle" else line_start
    line: dict[str, Any] = {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": f"1 × {price_obj.get('product')} (at {amount / 100:.2f} {currency.upper()} / {interval})"
        if subscription
        else "Invoice item",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": inv_id,
        "livemode": livemode,
        "metadata": dict(subscription_metadata or {}) if subscription else {},
        "period": {"end": line_end, "start": line_start},
        "quantity": 1,
    }
    line.update(
        {
            "parent": {
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": subscription,
                    "subscription_item": subscription_item,
                },
                "type": "subscription_item_details",
            }
            if subscription
            else {
                "invoice_item_details": {"invoice_item": new_id("ii"), "proration": False, "proration_details": {"credited_items": None}, "subscription": None},
                "subscription_item_details": None,
                "type": "invoice_item_details",
            },
            "pretax_credit_amounts": [],
            "pricing": {
                "price_details": {"price": price_obj["id"], "product": price_obj.get("product")},
                "type": "price_details",
                "unit_amount_decimal": str(amount),
            },
            "subtotal": amount,
            "taxes": [],
        }
    )
    inv: dict[str, Any] = {
        "id": inv_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "entitle",
        "account_tax_ids": None,
        "amount_due": amount,
        "amount_overpaid": 0,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 1 if paid else 0,
        "attempted": paid,
        "auto_advance": not paid,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None, "provider": None, "status": None},
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "custom_fields": None,
        "customer": customer,
        "customer_address": None,
        "customer_email": None,
        "customer_name": None,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": created if status != "draft" else None,
        "ending_balance": 0 if status != "draft" else None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None if status == "draft" else f"https://invoice.stripe.com/i/acct_entitle/test_{inv_id}",
        "invoice_pdf": None if status == "draft" else f"https://pay.stripe.com/invoice/acct_entitle/test_{inv_id}/pdf",
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": [line], "has_more": False, "total_count": 1, "url": f"/v1/invoices/{inv_id}/lines"},
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "next_payment_attempt": None,
        "number": None if status == "draft" else f"ENT-{secrets.randbelow(10**4):04d}",
        "on_behalf_of": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": line_start,
        "period_start": inv_period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": {
            "finalized_at": created if status != "draft" else None,
            "marked_uncollectible_at": None,
            "paid_at": created if paid else None,
            "voided_at": None,
        },
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "test_clock": None,
        "threshold_reason": None,
        "total": amount,
        "total_discount_amounts": [],
        "total_excluding_tax": amount,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created,
    }
    inv["parent"] = (
        {
            "quote_details": None,
            "subscription_details": {"metadata": dict(subscription_metadata or {}), "subscription": subscription},
            "type": "subscription_details",
        }
        if subscription
        else None
    )
    if payment_intent:
        # `payments` is includable: present only when expanded (`expand[]=payments`).
        inv["payments"] = {
            "object": "list",
            "data": [invoice_payment(invoice=inv_id, payment_intent=payment_intent, amount=amount, currency=currency, status="paid" if paid else "open", created=created, livemode=livemode)],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoice_payments?invoice={inv_id}",
        }
    return inv
