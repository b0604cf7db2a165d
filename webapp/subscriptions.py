"""The payer's subscriptions in the Mini App: `GET /api/subscriptions`, `POST /api/subscriptions/{id}/cancel|resume`."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask_jwt_extended import jwt_required

from app import subscription_actions, subscriptions
from app.models import Subscription
from webapp.context import catalogue, settings
from webapp.errors import ApiError
from webapp.purchase import signed_in_user

log = logging.getLogger(__name__)

bp = Blueprint("subscriptions", __name__)


def _as_json(row: Subscription) -> dict:
    plan = catalogue().get(row.plan)
    return {**subscriptions.to_dict(row), "title": plan.title if plan is not None else row.plan}


MAX_ID = 2**53 - 1  # larger numbers name no row, and some databases cannot even compare them


def _own(subscription_id: int) -> Subscription:
    user = signed_in_user()
    row = subscriptions.owned_by(user, subscription_id) if subscription_id <= MAX_ID else None
    if row is None:
        raise ApiError(404, "subscription_unknown", "you have no subscription with this id")
    return row


def _act(subscription_id: int, action):
    row = _own(subscription_id)
    try:
        outcome = action(settings(), row, actor="payer")
    except subscription_actions.Refused as exc:
        raise ApiError(409, exc.code, exc.message) from None
    except subscription_actions.ProviderFailed as exc:
        log.warning("subscription %s: %s", row.id, exc)
        if not exc.configured:
            raise ApiError(503, f"{exc.provider}_not_configured", "this service cannot reach the payment provider yet") from None
        raise ApiError(502, f"{exc.provider}_error", "the payment provider did not answer as expected; try again in a moment") from None
    return jsonify({"subscription": _as_json(outcome.subscription), "changed": outcome.changed})


@bp.get("/api/subscriptions")
@jwt_required()
def listing():
    """The signed-in payer's subscriptions, newest first, each with its state and its next renewal or end.
    ---
    get:
      summary: The payer's subscriptions
      tags: [mini app]
      security: [{sessionToken: []}]
      responses:
        "200":
          description: the subscriptions
          content:
            application/json:
              schema:
                type: object
                required: [subscriptions]
                properties:
                  subscriptions: {type: array, items: {$ref: "#/components/schemas/PayerSubscription"}}
        "401": {$ref: "#/components/responses/SessionRefused"}
    """
    user = signed_in_user()
    return jsonify({"subscriptions": [_as_json(row) for row in subscriptions.of_user(user)]})


@bp.post("/api/subscriptions/<int:subscription_id>/cancel")
@jwt_required()
def cancel(subscription_id: int):
    """Cancel one of the payer's subscriptions at its period end (Stars: editUserStarSubscription; card: cancel_at_period_end).
    ---
    post:
      summary: Cancel a subscription at its period end
      tags: [mini app]
      security: [{sessionToken: []}]
      parameters:
        - {name: subscription_id, in: path, required: true, schema: {type: integer, minimum: 0, maximum: 9007199254740991}}
      responses:
        "200":
          description: the subscription after the action; `changed` is false when it already was so
          content:
            application/json:
              schema: {$ref: "#/components/schemas/SubscriptionAction"}
        "401": {$ref: "#/components/responses/SessionRefused"}
        "404":
          description: no subscription of the signed-in payer has this id (`subscription_unknown`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "409":
          description: >-
            not possible in its state (`subscription_ended`, `subscription_past_due`, or `resume_in_telegram`
            for a Star subscription the payer canceled in Telegram)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "502":
          description: Telegram or Stripe refused (`telegram_error`, `stripe_error`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "503":
          description: no bot token or Stripe key (`telegram_not_configured`, `stripe_not_configured`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    return _act(subscription_id, subscription_actions.cancel)


@bp.post("/api/subscriptions/<int:subscription_id>/resume")
@jwt_required()
def resume(subscription_id: int):
    """Let one of the payer's canceled subscriptions renew again.
    ---
    post:
      summary: Resume a canceled subscription
      tags: [mini app]
      security: [{sessionToken: []}]
      parameters:
        - {name: subscription_id, in: path, required: true, schema: {type: integer, minimum: 0, maximum: 9007199254740991}}
      responses:
        "200":
          description: the subscription after the action; `changed` is false when it already was so
          content:
            application/json:
              schema: {$ref: "#/components/schemas/SubscriptionAction"}
        "401": {$ref: "#/components/responses/SessionRefused"}
        "404":
          description: no subscription of the signed-in payer has this id (`subscription_unknown`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "409":
          description: >-
            not possible in its state (`subscription_ended`, `subscription_past_due`, or `resume_in_telegram`
            for a Star subscription the payer canceled in Telegram)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "502":
          description: Telegram or Stripe refused (`telegram_error`, `stripe_error`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "503":
          description: no bot token or Stripe key (`telegram_not_configured`, `stripe_not_configured`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    return _act(subscription_id, subscription_actions.resume)

