"""`GET /api/plans`: the catalogue as JSON, with each card plan's price as Stripe has it."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.stripe.prices import DEFAULT_LANGUAGE, card_price, language_tag_valid
from webapp.context import catalogue, settings
from webapp.errors import ApiError

bp = Blueprint("plans", __name__)


@bp.get("/api/plans")
def list_plans():
    """Every plan with its prices; card prices written for the payer's language.
    ---
    get:
      summary: The plan catalogue
      tags: [mini app]
      parameters:
        - name: lang
          in: query
          required: false
          description: >-
            the payer's language (Telegram's `language_code`, e.g. `en`, `de`, `pt-br`) for `card_price.formatted`;
            default: the `Accept-Language` header's first language, else English
          schema: {type: string, pattern: '^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$'}
      responses:
        "200":
          description: every plan
          content:
            application/json:
              schema:
                type: object
                required: [plans]
                properties:
                  plans: {type: array, items: {$ref: "#/components/schemas/Plan"}}
        "400":
          description: "`lang` is not a language tag (`language_invalid`)"
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    language = _language()
    config = settings()
    plans = []
    for plan in catalogue():
        price = card_price(config, plan.stripe_price) if plan.sold_by_card else None
        plans.append({**plan.to_dict(), "card_price": price.to_dict(language) if price else None})
    return jsonify({"plans": plans})


def _language() -> str:
    """The payer's language: `?lang=`, else the first of Accept-Language, else English."""
    if "lang" in request.args:
        tag = request.args["lang"]
        if not language_tag_valid(tag):
            raise ApiError(400, "language_invalid", "lang must be a language tag such as en, de or pt-br")
        return tag
    for tag, _quality in request.accept_languages:
        if language_tag_valid(tag):
            return tag
    return DEFAULT_LANGUAGE
