"""`GET /openapi.json`: the OpenAPI 3.1 description of every route, generated from the app's url_map.

apispec's FlaskPlugin turns each rule into a path (`<telegram_id>` becomes `{telegram_id}`) and reads its
operations from the YAML after `---` in the view's docstring; the shared schemas, responses and security
schemes are registered once here.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from apispec import APISpec
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Flask, current_app, jsonify

bp = Blueprint("openapi", __name__)

# Rules that are not part of the API (Flask's own static files).
UNDESCRIBED_ENDPOINTS = {"static"}

NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time", "description": "ISO 8601 in UTC with a `Z`; null: none"}

SCHEMAS: dict[str, dict] = {
    "Error": {
        "type": "object",
        "description": "Every 4xx and 5xx answer.",
        "required": ["error"],
        "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
    },
    "ErrorDetail": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "a stable machine-readable code"},
            "message": {"type": "string", "description": "for people; may change"},
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "first_name", "last_name", "username", "language_code", "is_premium"],
        "properties": {
            "id": {"type": "integer", "description": "the Telegram user id"},
            "first_name": NULLABLE_STRING,
            "last_name": NULLABLE_STRING,
            "username": NULLABLE_STRING,
            "language_code": NULLABLE_STRING,
            "is_premium": {"type": ["boolean", "null"]},
        },
    },
    "SignedInUser": {
        "allOf": [
            {"$ref": "#/components/schemas/User"},
            {
                "type": "object",
                "required": ["stripe_customer"],
                "properties": {"stripe_customer": {"type": "boolean", "description": "whether a card billing portal can be opened"}},
            },
        ],
    },
    "Entitlement": {
        "type": "object",
        "required": ["entitlement", "active", "expires_at"],
        "properties": {
            "entitlement": {"type": "string"},
            "active": {"type": "boolean"},
            "expires_at": {**TIMESTAMP, "description": "when it ends; null: lifetime (or, when not active, nothing held)"},
        },
    },
    "Entitlements": {"type": "array", "items": {"$ref": "#/components/schemas/Entitlement"}},
    "Plan": {
        "type": "object",
        "required": ["key", "title", "entitlement", "description", "days", "stars", "stars_subscription",
                     "stripe_price", "stripe_mode", "sold_for_stars", "sold_by_card", "card_price"],
        "properties": {
            "key": {"type": "string"},
            "title": {"type": "string"},
            "entitlement": {"type": "string"},
            "description": {"type": "string"},
            "days": {"type": ["integer", "null"], "description": "null: lifetime"},
            "stars": {"type": ["integer", "null"], "description": "price in Telegram Stars; null: not sold for Stars"},
            "stars_subscription": {"type": "boolean"},
            "stripe_price": {**NULLABLE_STRING, "description": "Stripe Price id; null: not sold by card"},
            "stripe_mode": {"type": "string", "enum": ["payment", "subscription"]},
            "grace_days": {"type": "number", "minimum": 0, "description": "days a failed renewal keeps access"},
            "sold_for_stars": {"type": "boolean"},
            "sold_by_card": {"type": "boolean"},
            "trial_days": {"type": ["integer", "null"], "description": "a free trial of this many days, once per payer"},
            "stripe_promotion_codes": {"type": "boolean", "description": "Stripe Checkout takes Stripe's promotion codes"},
            "card_price": {
                "anyOf": [{"$ref": "#/components/schemas/CardPrice"}, {"type": "null"}],
                "description": "the Stripe Price as Stripe has it; null: not sold by card, or Stripe cannot be read now",
            },
        },
    },
    "WayInGrant": {
        "type": "object",
        "required": ["entitlement", "source", "starts_at", "ends_at"],
        "properties": {
            "entitlement": {"type": "string"},
            "source": {"type": "string", "enum": ["trial", "promo", "gift"]},
            "starts_at": TIMESTAMP,
            "ends_at": {**TIMESTAMP, "description": "null: lifetime"},
            "plan": {"type": "string"},
            "code": {"type": "string"},
        },
    },
    "CardPrice": {
        "type": "object",
        "required": ["amount", "currency", "formatted", "interval", "interval_count"],
        "properties": {
            "amount": {"type": "integer", "description": "in the currency's minor unit, as Stripe counts it (499 usd is $4.99)"},
            "currency": {"type": "string", "description": "ISO 4217, lowercase, as Stripe gives it"},
            "formatted": {"type": "string", "description": "the amount written for the payer's language, e.g. `$4.99`, `4,99 €`"},
            "interval": {**NULLABLE_STRING, "description": "`day`, `week`, `month` or `year` for a recurring price; null: one-off"},
            "interval_count": {"type": "integer", "description": "how many intervals between charges"},
        },
    },
    "Grant": {
        "type": "object",
        "required": ["id", "user", "entitlement", "active", "starts_at", "expires_at", "source", "reference",
                     "plan", "subscription_id", "revoked_at", "revoke_reason"],
        "properties": {
            "id": {"type": "integer"},
            "user": {"type": "integer", "description": "the Telegram user id"},
            "entitlement": {"type": "string"},
            "active": {"type": "boolean", "description": "whether the grant holds now"},
            "starts_at": TIMESTAMP,
            "expires_at": {**TIMESTAMP, "description": "null: lifetime"},
            "source": {"type": "string", "description": "`api`, `telegram`, `stripe`, `manual`, …"},
            "reference": {"type": "string"},
            "plan": NULLABLE_STRING,
            "subscription_id": NULLABLE_STRING,
            "revoked_at": TIMESTAMP,
            "revoke_reason": NULLABLE_STRING,
        },
    },
    "UserSummary": {
        "type": "object",
        "required": ["user", "entitlements", "subscriptions"],
        "properties": {
            "user": {"$ref": "#/components/schemas/User"}, "entitlements": {"$ref": "#/components/schemas/Entitlements"},
            "ways_in": {
                "type": "object",
                "description": "free trials started, promo codes redeemed, gifts given and received",
                "properties": {
                    "trials": {"type": "array", "items": {"type": "object"}},
                    "promo_redemptions": {"type": "array", "items": {"type": "object"}},
                    "gifts": {"type": "array", "items": {"type": "object"}},
                },
            },
            "subscriptions": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}},
        },
    },
    "Subscription": {
        "type": "object",
        "required": ["id", "user", "provider", "plan", "entitlement", "state", "period_end", "grace_until", "renews",
                     "canceled_by", "end_reason", "created_at", "ended_at"],
        "properties": {
            "id": {"type": "integer"},
            "user": {"type": "integer", "description": "the Telegram user id"},
            "provider": {"type": "string", "enum": ["telegram", "stripe"]},
            "plan": {"type": "string"},
            "entitlement": {"type": "string"},
            "state": {"type": "string", "enum": ["active", "canceled", "past_due", "ended"],
                      "description": "`active` renews; `canceled` is paid to `period_end` and will not renew; "
                                     "`past_due`: a renewal failed, held until `grace_until`"},
            "period_end": {**TIMESTAMP, "description": "the end of the last paid period: the next renewal, or the end"},
            "grace_until": {**TIMESTAMP, "description": "while `past_due`: when the grace ends"},
            "renews": {"type": "boolean"},
            "canceled_by": {"type": ["string", "null"], "enum": ["payer", "service", None],
                            "description": "while `canceled`: canceled by the payer at the provider, or through this service"},
            "end_reason": NULLABLE_STRING,
            "created_at": TIMESTAMP,
            "ended_at": TIMESTAMP,
        },
    },
    "PayerSubscription": {
        "allOf": [
            {"$ref": "#/components/schemas/Subscription"},
            {"type": "object", "required": ["title"], "properties": {"title": {"type": "string", "description": "the plan's title"}}},
        ],
    },
    "SubscriptionAction": {
        "type": "object",
        "required": ["subscription", "changed"],
        "properties": {"subscription": {"$ref": "#/components/schemas/PayerSubscription"}, "changed": {"type": "boolean"}},
    },
    "Health": {
        "type": "object",
        "required": ["database", "broker", "workers"],
        "properties": {
            "database": {"type": "string", "description": "`ok` or `down: …`"},
            "broker": {"type": "string"},
            "workers": {"type": "string"},
            "error": {"$ref": "#/components/schemas/ErrorDetail"},
        },
    },
    "Session": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "user", "entitlements", "payments"],
        "properties": {
            "access_token": {"type": "string", "description": "a JWT whose `sub` is the Telegram user id"},
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer", "description": "seconds"},
            "user": {"$ref": "#/components/schemas/SignedInUser"},
            "entitlements": {"$ref": "#/components/schemas/Entitlements"},
            "payments": {
                "type": "object",
                "description": "which ways to pay this service offers",
                "required": ["stars", "card"],
                "properties": {"stars": {"type": "boolean"}, "card": {"type": "boolean"}},
            },
        },
    },
    "TelegramWebhookAnswer": {
        "type": "object",
        "required": ["ok", "status"],
        "properties": {
            "ok": {"const": True},
            "status": {"type": "string", "enum": ["recorded", "duplicate", "ignored"]},
            "event": {"type": "integer", "description": "the inbox event's id (not for `ignored`)"},
        },
    },
    "AnswerPreCheckoutQuery": {
        "type": "object",
        "description": "the Bot API method call that answers a pre-checkout query",
        "required": ["method", "pre_checkout_query_id", "ok"],
        "properties": {
            "method": {"const": "answerPreCheckoutQuery"},
            "pre_checkout_query_id": {"type": "string"},
            "ok": {"type": "boolean"},
            "error_message": {"type": "string", "description": "why it was declined (only when `ok` is false)"},
        },
    },
    "PlanRequest": {
        "type": "object",
        "required": ["plan"],
        "properties": {
            "plan": {"type": "string", "minLength": 1, "description": "a plan key from GET /api/plans"},
            "gift": {"type": "boolean", "description": "POST /api/invoice: buy it for someone else (a one-off plan)"},
        },
        "examples": [{"plan": "premium_week"}],
    },
}

SECURITY_SCHEMES = {
    "sessionToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                     "description": "the `access_token` from POST /api/session"},
    "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key from `entitle apikeys create`"},
    "metricsToken": {"type": "http", "scheme": "bearer", "description": "`METRICS_TOKEN`, needed only when it is set"},
    "telegramSecret": {"type": "apiKey", "in": "header", "name": "X-Telegram-Bot-Api-Secret-Token",
                       "description": "`TELEGRAM_WEBHOOK_SECRET`, as given to setWebhook"},
    "initData": {"type": "apiKey", "in": "header", "name": "Authorization",
                 "description": "`tma <initData>` (Telegram.WebApp.initData); the JSON body may carry it instead"},
}


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


RESPONSES = {
    "SessionRefused": _error("no session token, or one that is not valid, expired or names no known user "
                             "(`token_missing`, `token_invalid`, `token_expired`, `user_unknown`)"),
    "ApiKeyRefused": _error("a missing or wrong API key (`api_key_invalid`)"),
    "ApiKeyReadOnly": _error("the key may only read (`api_key_read_only`, from `apikeys create --read-only`)"),
    "RateLimited": {**_error("the key made more than `API_RATE_LIMIT` requests this minute (`rate_limited`)"),
                    "headers": {"Retry-After": {"description": "seconds until the key may ask again",
                                                "schema": {"type": "integer", "minimum": 1}}}},
    "PayloadTooLarge": _error("the body is larger than `MAX_BODY_BYTES` (`payload_too_large`)"),
    "StripeFailed": _error("Stripe refused or could not be reached (`stripe_error`)"),
    "StripeNotConfigured": _error("no `STRIPE_SECRET_KEY` (`stripe_not_configured`)"),
    "UserInvalid": _error("not a Telegram user id (`user_invalid`)"),
    "HeaderTooLarge": _error("a request header line is longer than 8190 bytes (`header_too_large`)"),
}
# Answers any route may give, whatever its own description says.
EVERY_OPERATION_RESPONSES = {"431": {"$ref": "#/components/responses/HeaderTooLarge"}}


PARAMETERS = {
    "TelegramId": ("path", {"name": "telegram_id", "required": True, "description": "the Telegram user id",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 9007199254740991, "examples": [42]}}),
}


def build_description(app: Flask) -> dict:
    """The OpenAPI 3.1 description of every described route of `app`, as a dict."""
    spec = APISpec(
        title="entitle",
        version=_version(),
        openapi_version="3.1.0",
        plugins=[FlaskPlugin()],
        info={"description": "Telegram Stars and Stripe payments turned into entitlements. "
                             'Errors are `{"error": {"code", "message"}}` with a 4xx or 5xx status.'},
    )
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema)
    for name, response in RESPONSES.items():
        spec.components.response(name, response)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for name, (location, parameter) in PARAMETERS.items():
        spec.components.parameter(name, location, parameter)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint not in UNDESCRIBED_ENDPOINTS:
            spec.path(view=app.view_functions[rule.endpoint], app=app)
    document = spec.to_dict()
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].update(EVERY_OPERATION_RESPONSES)
    return document


def _version() -> str:
    try:
        return version("entitle")
    except PackageNotFoundError:
        return "0"


@bp.get("/openapi.json")
def description():
    """This description.
    ---
    get:
      summary: The OpenAPI 3.1 description of every route
      tags: [meta]
      responses:
        "200":
          description: the OpenAPI document
          content:
            application/json:
              schema: {type: object, required: [openapi, info, paths]}
    """
    built = current_app.extensions.get("entitle.openapi")
    if built is None:
        built = current_app.extensions["entitle.openapi"] = build_description(current_app)
    return jsonify(built)
