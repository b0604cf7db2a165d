"""The Mini App's ways in besides paying: `POST /api/trial` and `POST /api/redeem`."""
from __future__ import annotations

from flask import Blueprint, jsonify
from flask_jwt_extended import jwt_required

from app.clock import iso
from app.entitlements import GrantResult
from app.ways import promo, trials
from app.ways.guesses import limit_for
from app.ways.refusals import Refused
from webapp.body import json_object
from webapp.context import catalogue, settings
from webapp.errors import error_response
from webapp.purchase import signed_in_user

bp = Blueprint("ways", __name__)


def _granted(result: GrantResult, **extra):
    grant = result.grant
    return jsonify({"entitlement": grant.entitlement, "source": grant.source, "starts_at": iso(grant.starts_at),
                    "ends_at": iso(grant.ends_at), **extra})


def _refused(refusal: Refused):
    response = error_response(refusal.status, refusal.reason, refusal.message)
    if refusal.retry_after:
        response.headers["Retry-After"] = str(refusal.retry_after)
    return response


@bp.post("/api/trial")
@jwt_required()
def start_trial():
    """Start a plan's free trial for the signed-in user (once per user and entitlement).
    ---
    post:
      summary: Start a free trial
      tags: [mini app]
      security: [{sessionToken: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                plan: {type: string, maxLength: 64, description: "a plan with `trial_days`; optional when only one has a trial"}
      responses:
        "200":
          description: the trial's grant
          content:
            application/json:
              schema: {$ref: "#/components/schemas/WayInGrant"}
        "400":
          description: no such plan, or it has no trial (`unknown_plan`, `no_trial`, `plan_required`, `malformed_json`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "401": {$ref: "#/components/responses/SessionRefused"}
        "409":
          description: the user had this trial, or held the entitlement before (`trial_used`, `held_before`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    body = json_object()
    key = body.get("plan")
    if key is not None and not isinstance(key, str):
        return error_response(400, "unknown_plan", "'plan' must be a plan's key")
    user = signed_in_user()
    try:
        plan = trials.choose_plan(catalogue(), key)
        return _granted(trials.start(user, plan, via="miniapp"), plan=plan.key)
    except Refused as refusal:
        return _refused(refusal)


@bp.post("/api/redeem")
@jwt_required()
def redeem_code():
    """Redeem a promo code for the signed-in user.
    ---
    post:
      summary: Redeem a promo code
      tags: [mini app]
      security: [{sessionToken: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [code]
              properties:
                code: {type: string, maxLength: 64}
      responses:
        "200":
          description: the code's grant
          content:
            application/json:
              schema: {$ref: "#/components/schemas/WayInGrant"}
        "400":
          description: 'the body is not {"code": "..."} (`code_required`, `malformed_json`)'
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "401": {$ref: "#/components/responses/SessionRefused"}
        "403":
          description: the code is for new members only (`not_for_you`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "404":
          description: no such code (`unknown`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "409":
          description: used up, or already used by this user (`used_up`, `already_used`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "410":
          description: expired or disabled (`expired`, `disabled`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "429":
          description: too many wrong codes in an hour (`too_many`); `Retry-After` says when to try again
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    body = json_object()
    code = body.get("code")
    if not isinstance(code, str) or not code.strip() or len(code) > 64:
        return error_response(400, "code_required", "send {\"code\": \"...\"}")
    user = signed_in_user()
    limit = limit_for(settings().redis_url, settings().broker_namespace)
    try:
        row, result = promo.redeem(user, code, via="miniapp", limit=limit)
    except Refused as refusal:
        return _refused(refusal)
    return _granted(result, code=row.code)
