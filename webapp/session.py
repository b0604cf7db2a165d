"""`POST /api/session` turns Telegram initData into a session token; `GET /api/me` reads it back."""
from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, jsonify, request
from flask_jwt_extended import create_access_token, get_jwt_identity, jwt_required

from app import entitlements, metrics
from app.telegram.initdata import LIKELY_CAUSES, InitDataError, parse_init_data, verify_init_data
from app.users import ensure_user, find_user, profile_from_telegram, user_to_dict
from webapp.body import json_object, raw_body
from webapp.context import settings
from webapp.errors import ApiError

bp = Blueprint("session", __name__)
log = logging.getLogger(__name__)

TMA_SCHEME = "tma"


@bp.post("/api/session")
def create_session():
    """Verify initData and answer a short-lived bearer token with the user and their entitlements.
    ---
    post:
      summary: Sign in with Telegram initData
      tags: [mini app]
      security: [{}, {initData: []}]
      requestBody:
        required: false
        description: '`{"init_data": "…"}`, unless the `Authorization: tma <initData>` header carries it'
        content:
          application/json:
            schema:
              type: object
              required: [init_data]
              properties:
                init_data: {type: string, minLength: 1, description: Telegram.WebApp.initData}
      responses:
        "200":
          description: a session token, the user and what they hold
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Session"}
        "400":
          description: no initData was sent, or the body is not JSON (`init_data_missing`, `malformed_json`, `malformed_body`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "401":
          description: >-
            initData failed a check (`malformed`, `hash_missing`, `hash_mismatch`, `expired`, `auth_date_missing`,
            `auth_date_invalid`, `from_future`, `user_invalid`, `user_missing`, …)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "413": {$ref: "#/components/responses/PayloadTooLarge"}
        "503":
          description: "`TELEGRAM_BOT_TOKEN` is not set (`telegram_not_configured`)"
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    started = time.perf_counter()
    try:
        body = _sign_in()
    except ApiError as exc:
        metrics.miniapp_session_failures.labels(reason=exc.code).inc()
        raise
    finally:
        metrics.miniapp_exchange_latency.observe(time.perf_counter() - started)
    metrics.miniapp_sessions.inc()
    return jsonify(body)


@bp.get("/api/me")
@jwt_required()
def me():
    """The signed-in user and what they hold now.
    ---
    get:
      summary: The signed-in user and their entitlements
      tags: [mini app]
      security: [{sessionToken: []}]
      responses:
        "200":
          description: the user and what they hold
          content:
            application/json:
              schema:
                type: object
                required: [user, entitlements]
                properties:
                  user: {$ref: "#/components/schemas/SignedInUser"}
                  entitlements: {$ref: "#/components/schemas/Entitlements"}
        "401": {$ref: "#/components/responses/SessionRefused"}
    """
    identity = get_jwt_identity()
    if not isinstance(identity, str) or not identity.isdigit():
        raise ApiError(401, "token_invalid", "the session token is not valid; sign in again")
    user = find_user(int(identity))
    if user is None:
        raise ApiError(401, "user_unknown", "the user of this token no longer exists; sign in again")
    return jsonify({"user": _user_json(user), "entitlements": entitlements.summary(user)})


def _user_json(user) -> dict:
    """The user as JSON, and whether they have a Stripe customer (a card billing portal to open)."""
    return {**user_to_dict(user), "stripe_customer": bool(user.stripe_customer_id)}


def _sign_in() -> dict:
    config = settings()
    if not config.telegram_bot_token:
        raise ApiError(503, "telegram_not_configured", "Mini App sign-in needs TELEGRAM_BOT_TOKEN on the server")
    raw = _init_data_from_request()
    try:
        data = verify_init_data(raw, config.telegram_bot_token, max_age=config.initdata_max_age)
    except InitDataError as exc:
        _log_refusal(exc, raw)
        raise ApiError(401, exc.reason, exc.message) from None
    if data.user is None:
        raise ApiError(401, "user_missing", "initData carries no user; open the Mini App from the bot")
    user = ensure_user(data.user_id, **profile_from_telegram(data.user))
    return {
        "access_token": create_access_token(identity=str(user.telegram_id)),
        "token_type": "Bearer",
        "expires_in": config.jwt_access_token_minutes * 60,
        "user": _user_json(user),
        "entitlements": entitlements.summary(user),
        # Which buy buttons the page shows: Stars need only the bot token, cards need Stripe.
        "payments": {"stars": True, "card": bool(config.stripe_secret_key)},
    }


def _log_refusal(exc: InitDataError, raw: str) -> None:
    """The technical reason for the operator (the page shows the payer plain words); never the initData itself."""
    log.warning(
        "Mini App sign-in refused for %s: %s (%s); likely cause: %s. `entitle initdata debug` with the page's initData shows every check",
        _claimed_user(raw), exc.reason, exc.message, LIKELY_CAUSES.get(exc.reason, "unknown"),
    )


def _claimed_user(raw: str) -> str:
    """Who the refused initData says it is (unverified), for the log."""
    try:
        user = json.loads(parse_init_data(raw).get("user", ""))
        return f"user {int(user['id'])} (unverified)"
    except (InitDataError, ValueError, TypeError, KeyError):
        return "an unreadable initData"


def _init_data_from_request() -> str:
    """initData from `Authorization: tma <initData>`, else from the JSON body's `init_data`."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == TMA_SCHEME:
        credentials = credentials.strip()
        if not credentials:
            raise ApiError(400, "init_data_missing", "the Authorization: tma header carries no initData")
        return credentials
    if not raw_body():
        raise ApiError(400, "init_data_missing", 'send {"init_data": "…"} or Authorization: tma <initData>')
    raw = json_object(what='a JSON object like {"init_data": "…"}').get("init_data")
    if not isinstance(raw, str) or not raw:
        raise ApiError(400, "init_data_missing", '"init_data" must be a non-empty string (Telegram.WebApp.initData)')
    return raw
