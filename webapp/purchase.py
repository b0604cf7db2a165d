"""Buying from the Mini App, for both providers: `POST /api/invoice` (a Telegram Stars invoice link),
`POST /api/checkout` (a Stripe Checkout Session), `POST /api/portal` and `GET /checkout/success`."""
from __future__ import annotations

import logging
import re
from html import escape

import requests
import stripe
from flask import Blueprint, Response, jsonify, request
from flask_jwt_extended import get_jwt_identity, jwt_required
from telebot.apihelper import ApiException

from app import entitlements
from app.models import User
from app.stripe import CannotFulfil, NothingToDo
from app.stripe.checkout import (
    NoCustomer,
    UnknownSession,
    app_url,
    apply_session,
    check_session,
    create_checkout_session,
    create_portal_session,
    created_here,
    retrieve_session,
)
from app.stripe import client as stripe_client
from app.telegram import client as telegram_client
from app.telegram import payments
from app.users import find_user
from webapp.body import json_object, raw_body
from webapp.context import catalogue, requested_plan, settings
from webapp.errors import ApiError

log = logging.getLogger(__name__)

# Stripe's Checkout Session ids: `cs_test_…` / `cs_live_…`, letters, digits and underscores.
CHECKOUT_SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]+\Z")

bp = Blueprint("purchase", __name__)


def _stripe() -> stripe.StripeClient:
    try:
        return stripe_client.client_for(settings())
    except stripe_client.NotConfigured:
        raise ApiError(503, "stripe_not_configured", "card payments need STRIPE_SECRET_KEY on the server") from None


def _stripe_failed(exc: stripe.StripeError, doing: str) -> ApiError:
    log.warning("Stripe refused to %s: %s", doing, stripe_client.describe_error(exc))
    return ApiError(502, "stripe_error", f"Stripe could not {doing} just now; try again in a moment")


def signed_in_user() -> User:
    """The user of the request's session token; 401 when they no longer exist."""
    identity = get_jwt_identity()
    user = find_user(int(identity)) if isinstance(identity, str) and identity.isdigit() else None
    if user is None:
        raise ApiError(401, "user_unknown", "the user of this token no longer exists; sign in again")
    return user


@bp.post("/api/invoice")
@jwt_required()
def invoice():
    """A Telegram Stars invoice link for `{"plan"}`, made out to the signed-in user: answers `{"link"}`.
    ---
    post:
      summary: A Telegram Stars invoice link (createInvoiceLink)
      tags: [mini app]
      security: [{sessionToken: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/PlanRequest"}
      responses:
        "200":
          description: the invoice link, for Telegram.WebApp.openInvoice
          content:
            application/json:
              schema:
                type: object
                required: [link]
                properties:
                  link: {type: string}
        "400":
          description: no such plan, or one not sold for Stars, or a subscription asked as a gift (`plan_required`, `unknown_plan`, `not_sold_for_stars`, `not_giftable`, `malformed_json`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "401": {$ref: "#/components/responses/SessionRefused"}
        "413": {$ref: "#/components/responses/PayloadTooLarge"}
        "502":
          description: Telegram did not create the invoice (`telegram_error`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "503":
          description: no `TELEGRAM_BOT_TOKEN` (`telegram_not_configured`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    plan = requested_plan(stars=True)
    gift = (json_object() if raw_body() else {}).get("gift") is True
    if gift and plan.stars_subscription:
        raise ApiError(400, "not_giftable", f"plan {plan.key!r} renews by itself, so it cannot be a gift")
    identity = str(get_jwt_identity())
    if not identity.isdigit():
        raise ApiError(401, "token_invalid", "the session token does not name a Telegram user")
    if find_user(int(identity)) is None:
        raise ApiError(401, "user_unknown", "the user of this token no longer exists; sign in again")
    try:
        link = payments.create_invoice_link(telegram_client.client_for(settings()), plan, int(identity), gift=gift)
    except telegram_client.NotConfigured:
        raise ApiError(503, "telegram_not_configured", "this service has no Telegram bot token") from None
    except (ApiException, requests.RequestException) as exc:
        log.warning("createInvoiceLink failed: %s", telegram_client.describe_error(exc))
        raise ApiError(502, "telegram_error", f"Telegram did not create the invoice: {telegram_client.describe_error(exc)}") from None
    return jsonify({"link": link})


@bp.post("/api/checkout")
@jwt_required()
def checkout():
    """A Checkout Session for `{"plan"}`: answers `{"url", "id"}`.
    ---
    post:
      summary: A Stripe Checkout Session
      tags: [mini app]
      security: [{sessionToken: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/PlanRequest"}
      responses:
        "200":
          description: the session, to open its `url`
          content:
            application/json:
              schema:
                type: object
                required: [url, id]
                properties:
                  url: {type: string}
                  id: {type: string}
        "400":
          description: no such plan, or one not sold by card (`plan_required`, `unknown_plan`, `not_sold_by_card`, `malformed_json`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "401": {$ref: "#/components/responses/SessionRefused"}
        "413": {$ref: "#/components/responses/PayloadTooLarge"}
        "502": {$ref: "#/components/responses/StripeFailed"}
        "503": {$ref: "#/components/responses/StripeNotConfigured"}
    """
    user = signed_in_user()
    plan = requested_plan(stars=False)
    gift = json_object().get("gift") is True
    if gift and plan.stripe_mode == "subscription":
        raise ApiError(400, "not_giftable", f"plan {plan.key!r} renews by itself, so it cannot be a gift")
    client = _stripe()
    try:
        session = create_checkout_session(client, settings(), user, plan, gift=gift)
    except stripe.StripeError as exc:
        raise _stripe_failed(exc, "start a checkout") from None
    return jsonify({"url": session["url"], "id": session["id"]})


@bp.post("/api/portal")
@jwt_required()
def portal():
    """A Customer Portal session for the signed-in payer: answers `{"url"}`.
    ---
    post:
      summary: A Stripe Customer Portal session
      tags: [mini app]
      security: [{sessionToken: []}]
      responses:
        "200":
          description: the portal session, to open its `url`
          content:
            application/json:
              schema:
                type: object
                required: [url]
                properties:
                  url: {type: string}
        "401": {$ref: "#/components/responses/SessionRefused"}
        "404":
          description: nothing was bought by card yet (`no_customer`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "502": {$ref: "#/components/responses/StripeFailed"}
        "503": {$ref: "#/components/responses/StripeNotConfigured"}
    """
    user = signed_in_user()
    client = _stripe()
    try:
        session = create_portal_session(client, settings(), user)
    except NoCustomer:
        raise ApiError(404, "no_customer", "nothing was bought by card yet, so there is no billing account to manage") from None
    except stripe.StripeError as exc:
        raise _stripe_failed(exc, "open the billing portal") from None
    return jsonify({"url": session["url"]})


@bp.get("/checkout/success")
def success():
    """Where Checkout returns the payer: fulfil a paid session now (the webhook may come later) and lead back to the Mini App.

    Only sessions this service created are looked up at Stripe; any other id is 404 at once.
    ---
    get:
      summary: Where Stripe Checkout returns the payer
      tags: [mini app]
      parameters:
        - name: session_id
          in: query
          required: true
          description: the Checkout Session's id (`cs_…`)
          schema: {type: string, pattern: "^cs_[A-Za-z0-9_]+$"}
      responses:
        "200":
          description: a page saying what became of the payment, leading back to the Mini App
          content:
            text/html:
              schema: {type: string}
        "400":
          description: no `cs_…` session id, or one with characters Stripe never uses (`session_id_missing`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "404":
          description: a session this service did not start, or one Stripe does not know (`session_unknown`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "502":
          description: Stripe refused the look-up (`stripe_error`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "503": {$ref: "#/components/responses/StripeNotConfigured"}
    """
    session_id = request.args.get("session_id", "")
    if not CHECKOUT_SESSION_ID.match(session_id):
        raise ApiError(400, "session_id_missing", "expected ?session_id=cs_… from Stripe Checkout")
    if not created_here(session_id):
        raise ApiError(404, "session_unknown", "this checkout session was not started here")
    client = _stripe()
    try:
        session = retrieve_session(client, session_id)
    except UnknownSession:
        raise ApiError(404, "session_unknown", "Stripe knows no such checkout session") from None
    except stripe.InvalidRequestError as exc:
        raise _stripe_failed(exc, "look up the checkout session") from None
    except stripe.StripeError as exc:
        log.warning("checkout session %s not confirmed on return: %s", session_id, stripe_client.describe_error(exc))
        return _page("Payment being confirmed", "We will unlock your purchase as soon as Stripe confirms the payment.")
    try:
        done = apply_session(check_session(client, session, catalogue()))
    except entitlements.PaymentReversed as exc:
        log.info("checkout session %s not fulfilled on return: %s", session_id, exc)
        return _page("Payment refunded", "This payment was refunded or disputed, so it unlocks nothing.")
    except NothingToDo as exc:
        log.info("checkout session %s not fulfilled on return: %s", session_id, exc)
        return _page("Payment processing", "Your payment is on its way; we will unlock your purchase once it clears.")
    except CannotFulfil as exc:
        log.error("checkout session %s not fulfilled on return: %s", session_id, exc)
        return _page("Payment not applied", "This payment could not be matched to what was bought; it has been logged for a person to look at.")
    except stripe.StripeError as exc:
        log.error("checkout session %s paid but not fulfilled on return: %s", session_id, stripe_client.describe_error(exc))
        return _page("Payment being confirmed", "We will unlock your purchase as soon as the payment is confirmed.")
    if done.gift is not None:
        return _page("Gift paid", f"Your gift of {done.plan.title} is ready: the bot sent you its link to pass on.")
    held = {e["entitlement"]: e["expires_at"] for e in entitlements.summary(done.user)}
    until = held.get(done.plan.entitlement)
    message = f"{done.plan.title} is yours" + (f" until {until[:10]}." if until else ".")
    return _page("Payment received", message)


def _page(title: str, message: str) -> Response:
    back = escape(app_url(settings()), quote=True)
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="4;url={back}">
<title>{escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;text-align:center}}a{{font-weight:600}}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<p>{escape(message)}</p>
<p><a href="{back}">Back to the app</a></p>
</body>
</html>
"""
    return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})
