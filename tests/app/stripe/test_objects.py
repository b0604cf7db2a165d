"""Reading the payer and ids from Stripe objects, as dicts or stripe-python objects."""
from __future__ import annotations

import stripe

from app.stripe import objects
from simulate import stripe_events as events


def test_a_checkout_session_names_its_payer_by_client_reference_id():
    session = events.checkout_session(client_reference_id="42", metadata={"telegram_user_id": "42"})
    assert objects.payer_of(session) == 42


def test_a_charge_names_its_payer_in_its_metadata():
    charge = events.charge(metadata={"telegram_user_id": "7"})
    assert objects.payer_of(charge) == 7


def test_an_invoice_names_its_payer_in_its_subscription_metadata():
    invoice = events.invoice(subscription="sub_1", subscription_metadata={"telegram_user_id": "9"})
    assert objects.payer_of(invoice) == 9


def test_an_invoice_of_an_older_api_version_names_its_payer_in_subscription_details():
    invoice = {"id": "in_1", "object": "invoice", "subscription_details": {"metadata": {"telegram_user_id": "11"}}}
    assert objects.payer_of(invoice) == 11


def test_a_stripe_python_object_is_read_like_a_dict():
    session = stripe.StripeObject.construct_from(events.checkout_session(client_reference_id="5"), "sk_test_x")
    assert objects.payer_of(session) == 5


def test_no_payer_or_a_payer_that_is_not_a_telegram_id_is_none():
    assert objects.payer_of(events.charge()) is None
    assert objects.payer_of(events.checkout_session(client_reference_id="someone-else", metadata={"telegram_user_id": "3"})) is None
    assert objects.payer_of(None) is None
