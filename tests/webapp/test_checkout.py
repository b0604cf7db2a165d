"""Card payments from the Mini App: Checkout and portal sessions as Stripe records them, and the return page."""
from __future__ import annotations

import dataclasses
import threading

import pytest

from app import db, users
from app.models import Event, Grant, LedgerEntry
from simulate import stripe_events as events
from tests.support.metrics import sample
from tests.support.stripe import PUBLIC_URL, buy, post_event, stripe_env, token_for
from tests.support.sqlite_lock import WriteLockProbe
from tests.support.waiting import wait_for
from webapp import create_app

USER = 42


@pytest.fixture
def env(env, stripe_api):
    return {**env, **stripe_env(stripe_api)}


@pytest.fixture
def signed_in(app):
    users.ensure_user(USER, first_name="Ada")
    return token_for(app, USER)


def checkout(client, headers, plan="premium_week"):
    return client.post("/api/checkout", json={"plan": plan}, headers=headers)


# --- POST /api/checkout -----------------------------------------------------------------------


def test_a_one_off_plan_opens_a_payment_checkout_for_the_users_customer(client, signed_in, stripe_api):
    response = checkout(client, signed_in)

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"].startswith("cs_test_") and body["url"].startswith("https://checkout.stripe.com/")
    customer = users.find_user(USER).stripe_customer_id
    assert stripe_api.customers[customer]["metadata"] == {"telegram_user_id": str(USER)}
    [call] = stripe_api.calls_to("POST", "/v1/checkout/sessions")
    metadata = {"telegram_user_id": str(USER), "plan": "premium_week"}
    assert call.params == {
        "mode": "payment",
        "line_items": [{"price": "price_premium_week", "quantity": "1"}],
        "customer": customer,
        "client_reference_id": str(USER),
        "metadata": metadata,
        "success_url": f"{PUBLIC_URL}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{PUBLIC_URL}/app",
        "payment_intent_data": {"metadata": metadata},
    }


def test_a_subscription_plan_opens_a_subscription_checkout(client, signed_in, stripe_api):
    assert checkout(client, signed_in, "premium_month").status_code == 200
    [call] = stripe_api.calls_to("POST", "/v1/checkout/sessions")
    assert call.params["mode"] == "subscription"
    assert call.params["line_items"] == [{"price": "price_premium_month", "quantity": "1"}]
    assert call.params["subscription_data"] == {"metadata": {"telegram_user_id": str(USER), "plan": "premium_month"}}
    assert "payment_intent_data" not in call.params


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, "plan_required"),
        ({"plan": ""}, "plan_required"),
        ({"plan": ["premium_week"]}, "plan_required"),
        ({"plan": "no_such_plan"}, "unknown_plan"),
        ({"plan": "supporter_lifetime"}, "not_sold_by_card"),
    ],
)
def test_a_plan_that_cannot_be_bought_by_card_is_400(client, signed_in, stripe_api, body, code):
    response = client.post("/api/checkout", json=body, headers=signed_in)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert stripe_api.calls == []


def test_checkout_needs_a_session_token(client):
    response = client.post("/api/checkout", json={"plan": "premium_week"})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "token_missing"


def test_without_a_stripe_key_checkout_is_503(settings, database, broker, signed_in):
    app = create_app(dataclasses.replace(settings, stripe_secret_key=None))
    response = checkout(app.test_client(), signed_in)
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "stripe_not_configured"


def test_a_stripe_failure_is_a_plain_502(client, signed_in, stripe_api, caplog):
    stripe_api.fail("POST", "/v1/checkout/sessions", status=400, code="resource_missing", message="No such price: 'price_premium_week'")
    response = checkout(client, signed_in)
    assert response.status_code == 502
    assert response.get_json()["error"] == {"code": "stripe_error", "message": "Stripe could not start a checkout just now; try again in a moment"}
    assert "No such price" in caplog.text


def test_concurrent_first_purchases_create_one_customer(app, signed_in, stripe_api):
    barrier = threading.Barrier(5)
    answers: list[int] = []

    def buy_now():
        barrier.wait()
        answers.append(checkout(app.test_client(), signed_in).status_code)

    threads = [threading.Thread(target=buy_now) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert answers == [200] * 5
    assert len(stripe_api.customers) == 1
    [customer] = stripe_api.customers
    assert {c.params["customer"] for c in stripe_api.calls_to("POST", "/v1/checkout/sessions")} == {customer}
    assert users.find_user(USER).stripe_customer_id == customer


# --- POST /api/portal -------------------------------------------------------------------------


def test_the_portal_before_any_card_purchase_is_404(client, signed_in, stripe_api):
    response = client.post("/api/portal", headers=signed_in)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "no_customer"
    assert stripe_api.calls == []


def test_the_portal_opens_for_the_users_customer_and_returns_to_the_app(client, app, signed_in, stripe_api):
    buy(client, app, stripe_api, USER)
    response = client.post("/api/portal", headers=signed_in)

    assert response.status_code == 200
    assert response.get_json()["url"].startswith("https://billing.stripe.com/")
    [call] = stripe_api.calls_to("POST", "/v1/billing_portal/sessions")
    assert call.params == {"customer": users.find_user(USER).stripe_customer_id, "return_url": f"{PUBLIC_URL}/app"}


# --- GET /checkout/success --------------------------------------------------------------------


def test_the_success_page_grants_before_the_webhook_and_the_webhook_grants_nothing_more(client, app, signed_in, stripe_api, worker):
    granted_before = sample("entitlements_granted_total", source="stripe")
    created = checkout(client, signed_in).get_json()
    session = stripe_api.set_checkout_session(created["id"], payment_status="paid")

    page = client.get(f"/checkout/success?session_id={session['id']}")

    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "Payment received" in html and f'href="{PUBLIC_URL}/app"' in html
    [grant] = Grant.select()
    assert grant.reference == session["payment_intent"] and grant.user.telegram_id == USER
    assert Event.select().count() == 0

    event = events.event("checkout.session.completed", session)
    assert post_event(client, event).status_code == 200
    wait_for(lambda: Event.get(Event.external_id == event["id"]).status == "processed", message="webhook processed")
    assert Grant.select().count() == 1
    assert LedgerEntry.select().where(LedgerEntry.action.in_(["grant", "extend"])).count() == 1
    assert sample("entitlements_granted_total", source="stripe") == granted_before + 1


def test_a_subscription_bought_on_the_success_page_is_not_granted_again_by_its_events(client, app, signed_in, stripe_api, worker):
    session = buy(client, app, stripe_api, USER, plan="premium_month")
    [grant] = Grant.select()
    assert grant.subscription_id == session["subscription"]

    sent = [
        events.event("checkout.session.completed", session),
        events.event("invoice.paid", stripe_api.invoices[session["invoice"]]),
        events.event("customer.subscription.created", stripe_api.subscriptions[session["subscription"]]),
    ]
    for event in sent:
        assert post_event(client, event).status_code == 200
    wait_for(lambda: all(Event.get(Event.external_id == e["id"]).status == "processed" for e in sent), message="all processed")
    assert Grant.select().count() == 1


def test_buying_a_subscription_calls_stripe_only_outside_any_write_transaction(client, app, database, signed_in, stripe_api):
    if db.is_postgres():
        pytest.skip("only SQLite locks the whole database for a write")
    probe = WriteLockProbe(database.database)
    stripe_api.on_request = probe

    buy(client, app, stripe_api, USER, plan="premium_month")

    assert Grant.select().count() == 1
    assert {"GET /v1/checkout/sessions", "GET /v1/invoices", "GET /v1/subscriptions"} <= {line.rsplit("/", 1)[0] for line in probe.seen}
    assert probe.locked == []


def test_an_unpaid_session_shows_that_the_payment_is_on_its_way(client, signed_in, stripe_api):
    created = checkout(client, signed_in).get_json()
    page = client.get(f"/checkout/success?session_id={created['id']}")
    assert page.status_code == 200 and "Payment processing" in page.get_data(as_text=True)
    assert Grant.select().count() == 0


def test_an_unknown_or_missing_session_id_is_an_error(client):
    missing = client.get("/checkout/success?session_id=cs_test_doesnotexist")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "session_unknown"
    assert client.get("/checkout/success").status_code == 400


@pytest.mark.parametrize("session_id", ["cs_\x00", "cs_test_a\x00b", "cs_\ud800", "cs_test_١٢", "cs_<script>"])
def test_a_session_id_with_characters_stripe_never_uses_is_400_json(client, stripe_api, session_id):
    response = client.get("/checkout/success", query_string={"session_id": session_id.encode("utf-8", "surrogatepass")})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "session_id_missing"
    assert stripe_api.calls == []


def test_a_session_id_not_created_here_is_404_without_asking_stripe(client, stripe_api):
    foreign = stripe_api.put_checkout_session(events.checkout_session(client_reference_id=str(USER)), prices=["price_premium_week"])
    for session_id in ["cs_unknown", foreign["id"], "cs_" + "x" * 100_000] + [f"cs_test_guess{n}" for n in range(50)]:
        response = client.get("/checkout/success", query_string={"session_id": session_id})
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "session_unknown"
    assert stripe_api.calls == []
    assert Grant.select().count() == 0


def test_a_session_created_here_is_looked_up_once_with_its_line_items_and_fulfils(client, app, signed_in, stripe_api):
    session = buy(client, app, stripe_api, USER)

    [lookup] = stripe_api.calls_to("GET", "/v1/checkout/sessions/")
    assert lookup.path == f"/v1/checkout/sessions/{session['id']}" and lookup.params == {"expand": ["line_items"]}
    assert [g.reference for g in Grant.select()] == [session["payment_intent"]]


def test_the_success_page_grants_nothing_for_a_session_billing_another_price(client, signed_in, stripe_api):
    created = checkout(client, signed_in).get_json()
    paid = stripe_api.set_checkout_session(created["id"], payment_status="paid", amount_total=1, currency="jpy")
    stripe_api.put_checkout_session(paid, prices=["price_one_yen"])

    page = client.get(f"/checkout/success?session_id={created['id']}")

    assert page.status_code == 200 and "Payment not applied" in page.get_data(as_text=True)
    assert Grant.select().count() == 0


def test_the_success_page_grants_nothing_when_the_session_names_another_user_than_its_customer(client, signed_in, stripe_api):
    created = checkout(client, signed_in).get_json()
    other = {"telegram_user_id": "7", "plan": "premium_week"}
    stripe_api.set_checkout_session(created["id"], payment_status="paid", client_reference_id="7", metadata=other)

    page = client.get(f"/checkout/success?session_id={created['id']}")

    assert page.status_code == 200 and "Payment not applied" in page.get_data(as_text=True)
    assert Grant.select().count() == 0 and users.find_user(7) is None
