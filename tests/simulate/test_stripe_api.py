"""The fake Stripe API answers stripe-python 16's `StripeClient` (built by `make_client`) as Stripe does."""
from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import stripe

from app.stripe import objects
from app.stripe.client import describe_error, make_client
from simulate import stripe_events as events
from simulate.stripe_api import FakeStripeAPI, decode_form

SUCCESS_URL = "https://entitle.example/checkout/success?session_id={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://entitle.example/app"


@pytest.fixture
def stripe_client(stripe_api) -> stripe.StripeClient:
    return stripe_api.client()


def test_decode_form_builds_nested_dicts_and_lists():
    pairs = [
        ("mode", "payment"),
        ("metadata[user]", "1"),
        ("metadata[plan]", "premium"),
        ("line_items[0][price]", "price_a"),
        ("line_items[0][quantity]", "1"),
        ("line_items[1][price_data][recurring][interval]", "month"),
        ("expand[]", "customer"),
        ("expand[]", "line_items"),
        ("payment_method_types[0]", "card"),
        ("metadata[empty]", ""),
    ]
    assert decode_form(pairs) == {
        "mode": "payment",
        "metadata": {"user": "1", "plan": "premium", "empty": ""},
        "line_items": [{"price": "price_a", "quantity": "1"}, {"price_data": {"recurring": {"interval": "month"}}}],
        "expand": ["customer", "line_items"],
        "payment_method_types": ["card"],
    }


def test_creating_a_customer_twice_with_one_idempotency_key_creates_one_customer(stripe_api, stripe_client):
    params = {"metadata": {"telegram_user_id": "42"}, "name": "Ada"}
    first = stripe_client.v1.customers.create(params=params, options={"idempotency_key": "customer-42"})
    second = stripe_client.v1.customers.create(params=params, options={"idempotency_key": "customer-42"})

    assert isinstance(first, stripe.Customer)
    assert first.id == second.id and first.id.startswith("cus_")
    assert first.metadata["telegram_user_id"] == "42"
    assert list(stripe_api.customers) == [first.id]
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    calls = stripe_api.calls_to("POST", "/v1/customers")
    assert [c.params for c in calls] == [{"metadata": {"telegram_user_id": "42"}, "name": "Ada"}] * 2
    assert calls[0].headers["Idempotency-Key"] == "customer-42"
    assert calls[0].headers["Authorization"] == f"Bearer {stripe_client._requestor.api_key}"
    assert calls[0].headers["Stripe-Version"] == stripe.api_version


def test_concurrent_customer_creation_with_one_key_creates_one_customer(stripe_api, stripe_client):
    barrier = threading.Barrier(8)

    def create(_):
        barrier.wait()
        return stripe_client.v1.customers.create(
            params={"metadata": {"telegram_user_id": "7"}}, options={"idempotency_key": "customer-7"}
        ).id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(create, range(8)))
    assert len(ids) == 1 and list(stripe_api.customers) == list(ids)


def test_reusing_an_idempotency_key_with_other_params_is_an_idempotency_error(stripe_client):
    stripe_client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.customers.create(params={"name": "B"}, options={"idempotency_key": "k1"})


def test_a_keyed_request_that_failed_while_running_replays_its_failure(stripe_api, stripe_client):
    pi = stripe_api.put_payment_intent()
    stripe_api.fail_refunds("balance_insufficient", "Insufficient funds in Stripe account.", times=1)
    params = {"payment_intent": pi["id"]}
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.refunds.create(params=params, options={"idempotency_key": "refund-a"})

    with pytest.raises(stripe.InvalidRequestError) as replayed:
        stripe_client.v1.refunds.create(params=params, options={"idempotency_key": "refund-a"})
    assert replayed.value.code == "balance_insufficient" and stripe_api.refunds == {}
    assert stripe_client.v1.refunds.create(params=params, options={"idempotency_key": "refund-b"}).status == "succeeded"


def test_a_keyed_request_refused_before_it_ran_may_be_sent_again(stripe_client):
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.create(params={"nmae": "A"}, options={"idempotency_key": "k2"})
    assert stripe_client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "k2"}).name == "A"


def test_a_customer_can_be_retrieved_updated_and_found_by_metadata(stripe_api, stripe_client):
    created = stripe_client.v1.customers.create(params={"metadata": {"telegram_user_id": "5", "x": "1"}})
    updated = stripe_client.v1.customers.update(created.id, params={"metadata": {"x": "", "plan": "p"}})
    assert updated.metadata.to_dict() == {"telegram_user_id": "5", "plan": "p"}
    assert stripe_client.v1.customers.retrieve(created.id).metadata["plan"] == "p"

    found = stripe_client.v1.customers.search(params={"query": "metadata['telegram_user_id']:'5'"})
    assert [c.id for c in found.data] == [created.id]
    assert stripe_client.v1.customers.search(params={"query": "metadata['telegram_user_id']:'6'"}).data == []


def test_an_unknown_parameter_is_rejected_as_stripe_would(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.customers.create(params={"metdata": {"a": "b"}})
    assert caught.value.code == "parameter_unknown" and caught.value.param == "metdata"


def test_a_checkout_session_is_recorded_and_retrievable(stripe_api, stripe_client):
    customer = stripe_client.v1.customers.create(params={"metadata": {"telegram_user_id": "42"}})
    stripe_api.put_price(price_id="price_premium_week", unit_amount=499, currency="eur", interval=None)

    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer.id,
            "client_reference_id": "42",
            "line_items": [{"price": "price_premium_week", "quantity": 1}],
            "metadata": {"plan": "premium_week", "telegram_user_id": "42"},
            "payment_intent_data": {"metadata": {"plan": "premium_week"}},
            "success_url": SUCCESS_URL,
            "cancel_url": CANCEL_URL,
        }
    )

    assert isinstance(session, stripe.checkout.Session)
    assert session.id.startswith("cs_test_") and session.url == f"https://checkout.stripe.com/c/pay/{session.id}"
    assert (session.status, session.payment_status, session.amount_total, session.currency) == ("open", "unpaid", 499, "eur")
    (call,) = stripe_api.calls_to("POST", "/v1/checkout/sessions")
    assert call.params["line_items"] == [{"price": "price_premium_week", "quantity": "1"}]
    assert (call.params["mode"], call.params["customer"], call.params["success_url"], call.params["cancel_url"]) == (
        "payment", customer.id, SUCCESS_URL, CANCEL_URL
    )

    again = stripe_client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    assert again.client_reference_id == "42" and again.metadata["plan"] == "premium_week"
    assert again.line_items.data[0].price.id == "price_premium_week"
    assert stripe_api.calls_to("GET", "/v1/checkout/sessions/")[0].params == {"expand": ["line_items"]}


def test_marking_a_payment_session_paid_creates_its_payment_intent(stripe_api, stripe_client):
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": "price_premium_week", "quantity": 1}],
            "payment_intent_data": {"metadata": {"plan": "premium_week"}},
            "success_url": SUCCESS_URL,
        }
    )
    stripe_api.set_checkout_session(session.id, payment_status="paid")

    paid = stripe_client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (paid.status, paid.payment_status, paid.url) == ("complete", "paid", None)
    assert isinstance(paid.payment_intent, stripe.PaymentIntent)
    assert paid.payment_intent.status == "succeeded" and paid.payment_intent.metadata["plan"] == "premium_week"
    assert paid.payment_intent.amount == paid.amount_total


def test_marking_a_subscription_session_paid_creates_subscription_and_invoice(stripe_api, stripe_client):
    customer = stripe_client.v1.customers.create()
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": "price_premium_month", "quantity": 1}],
            "subscription_data": {"metadata": {"telegram_user_id": "42"}},
            "success_url": SUCCESS_URL,
        }
    )
    paid = stripe_api.set_checkout_session(session.id, payment_status="paid")

    sub = stripe_client.v1.subscriptions.retrieve(paid["subscription"])
    assert sub.metadata["telegram_user_id"] == "42" and sub.customer == customer.id
    invoice = stripe_client.v1.invoices.retrieve(paid["invoice"], params={"expand": ["payments"]})
    assert invoice.parent.subscription_details.subscription == sub.id
    assert objects.invoice_subscription_id(invoice) == sub.id
    assert objects.invoice_period_end(invoice) == objects.subscription_period_end(sub)
    assert objects.invoice_payment_intent_id(invoice) == invoice.payments.data[0].payment.payment_intent
    plain = stripe_client.v1.invoices.retrieve(paid["invoice"])
    assert "payments" not in plain  # includable: only when expanded
    listed = stripe_client.v1.invoice_payments.list(params={"invoice": invoice.id})
    assert listed.data[0].payment.payment_intent == objects.invoice_payment_intent_id(invoice)


def test_a_subscription_is_retrieved_with_attribute_access(stripe_api, stripe_client):
    stored = stripe_api.put_subscription(
        customer="cus_A1", price="price_premium_month", metadata={"telegram_user_id": "42"}, cancel_at_period_end=True
    )

    sub = stripe_client.v1.subscriptions.retrieve(stored["id"])

    assert isinstance(sub, stripe.Subscription)
    assert sub.status == "active" and sub.cancel_at_period_end is True
    assert sub.metadata["telegram_user_id"] == "42"
    item = sub["items"].data[0]  # `sub.items` too: StripeObject is not a dict since v15
    assert sub.items.data[0].id == item.id
    assert item.price.id == "price_premium_month"
    assert item.current_period_end == stored["items"]["data"][0]["current_period_end"]
    assert objects.subscription_period_end(sub) == item.current_period_end
    assert sub.to_dict()["metadata"] == {"telegram_user_id": "42"}


def test_an_unknown_subscription_is_a_404_invalid_request(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.subscriptions.retrieve("sub_missing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


def test_on_request_sees_each_request_on_the_thread_serving_it(stripe_api, stripe_client):
    seen = []
    stripe_api.on_request = lambda call: seen.append((call.method, call.path, threading.current_thread() is threading.main_thread()))
    stripe_api.put_subscription(subscription_id="sub_seen")

    stripe_client.v1.subscriptions.retrieve("sub_seen")

    assert seen == [("GET", "/v1/subscriptions/sub_seen", False)]


def test_a_failing_on_request_hook_is_answered_as_a_500(stripe_api, stripe_client):
    def refuse(call):
        raise RuntimeError("hook refused")

    stripe_api.on_request = refuse
    with pytest.raises(stripe.APIError) as caught:
        stripe_client.v1.subscriptions.retrieve("sub_any")
    assert caught.value.http_status == 500 and "hook refused" in str(caught.value)


def test_a_portal_session_has_a_url_for_an_existing_customer(stripe_api, stripe_client):
    customer = stripe_client.v1.customers.create()
    portal = stripe_client.v1.billing_portal.sessions.create(params={"customer": customer.id, "return_url": CANCEL_URL})

    assert isinstance(portal, stripe.billing_portal.Session)
    assert portal.url.startswith("https://billing.stripe.com/p/session/") and portal.return_url == CANCEL_URL
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.billing_portal.sessions.create(params={"customer": "cus_nobody"})
    assert caught.value.code == "resource_missing" and caught.value.param == "customer"


def test_a_refund_refunds_the_payment_intent_once(stripe_api, stripe_client):
    pi = stripe_api.put_payment_intent(amount=499, currency="eur")

    refund = stripe_client.v1.refunds.create(params={"payment_intent": pi["id"]}, options={"idempotency_key": "refund-1"})

    assert isinstance(refund, stripe.Refund)
    assert (refund.status, refund.amount, refund.payment_intent, refund.charge) == ("succeeded", 499, pi["id"], pi["latest_charge"])
    assert stripe_client.v1.charges.retrieve(pi["latest_charge"]).refunded is True
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.refunds.create(params={"payment_intent": pi["id"]})
    assert caught.value.code == "charge_already_refunded"


def test_an_injected_refund_failure_surfaces_as_invalid_request_error(stripe_api, stripe_client):
    pi = stripe_api.put_payment_intent()
    stripe_api.fail_refunds("charge_already_refunded", "Charge ch_1 has already been refunded.")

    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.refunds.create(params={"payment_intent": pi["id"]})

    assert caught.value.http_status == 400 and caught.value.code == "charge_already_refunded"
    line = describe_error(caught.value)
    assert "charge_already_refunded" in line and "HTTP 400" in line and "has already been refunded" in line
    assert "\n" not in line and "sk_test" not in line
    stripe_api.clear_failures()
    assert stripe_client.v1.refunds.create(params={"payment_intent": pi["id"]}).status == "succeeded"


def test_a_refund_for_an_unknown_payment_intent_names_the_param(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.refunds.create(params={"payment_intent": "pi_unknown"})
    assert (caught.value.code, caught.value.param) == ("resource_missing", "payment_intent")


def test_a_wrong_key_is_a_401_that_never_shows_the_key():
    with FakeStripeAPI(secret_key="sk_test_right_key_123456") as api:
        wrong = make_client("sk_test_wrong_key_abcdef", api.url, max_network_retries=0)
        with pytest.raises(stripe.AuthenticationError) as caught:
            wrong.v1.customers.create()
        line = describe_error(caught.value)
        assert "HTTP 401" in line and "Invalid API Key" in line
        assert "wrong_key" not in line and "abcdef" not in line

        bare = requests.post(api.url + "/v1/customers", data={"name": "x"}, timeout=5)
        assert bare.status_code == 401
        assert bare.json()["error"]["type"] == "invalid_request_error"
        assert api.client().v1.customers.create().id.startswith("cus_")


def test_an_unreachable_api_is_described_in_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client("sk_test_unreachable_0000", f"http://127.0.0.1:{port}", max_network_retries=0, timeout=2)
    with pytest.raises(stripe.APIConnectionError) as caught:
        client.v1.customers.retrieve("cus_1")
    line = describe_error(caught.value)
    assert line.startswith("Stripe error (APIConnectionError)") and "\n" not in line
    assert "sk_test" not in line


def test_make_client_sends_every_base_address_to_the_api_base(stripe_api):
    client = make_client("sk_test_bases_000", stripe_api.url + "/")
    assert set(client._requestor.base_addresses.values()) == {stripe_api.url}
