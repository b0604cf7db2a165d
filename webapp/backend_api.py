"""`/api/v1`: the operator's backend checks, grants and revokes entitlements with an API key."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from app import apikeys, backend_api, entitlements
from webapp.body import json_object
from webapp.context import catalogue, settings
from webapp.errors import ApiError, error_response

bp = Blueprint("backend_api", __name__, url_prefix="/api/v1")
READING = ("GET", "HEAD", "OPTIONS")


@bp.before_request
def _authenticate():
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    row = apikeys.authenticate(key.strip()) if scheme.lower() == "bearer" else None
    if row is None:
        raise ApiError(401, "api_key_invalid", "send Authorization: Bearer <API key> with a key from `entitle apikeys create`")
    g.api_key = row
    limit = settings().api_rate_limit
    wait = apikeys.over_rate(row, limit) if limit else None
    if wait is not None:
        response = error_response(429, "rate_limited", f"this key made more than {limit} requests this minute; retry in {wait} s")
        response.headers["Retry-After"] = str(wait)
        return response
    if row.read_only and request.method not in READING:
        raise ApiError(403, "api_key_read_only", "this key may only read (it was made with `apikeys create --read-only`)")


@bp.errorhandler(backend_api.Refused)
def _refused(exc: backend_api.Refused):
    return error_response(exc.status, exc.code, exc.message)


@bp.get("/users/<telegram_id>")
def user(telegram_id: str):
    """The user and their entitlements; 404 `unknown_user` for a user never seen.
    ---
    get:
      summary: A user and their entitlements
      tags: [backend]
      security: [{apiKey: []}]
      parameters:
        - TelegramId  # components.parameters
      responses:
        "200":
          description: the user and what they hold now
          content:
            application/json:
              schema: {$ref: "#/components/schemas/UserSummary"}
        "400": {$ref: "#/components/responses/UserInvalid"}
        "401": {$ref: "#/components/responses/ApiKeyRefused"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "404":
          description: a user the service has never seen (`unknown_user`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    return jsonify(backend_api.user_summary(backend_api.telegram_id(telegram_id)))


@bp.get("/users/<telegram_id>/entitlements/<entitlement>")
def check(telegram_id: str, entitlement: str):
    """Whether the user holds the entitlement now, and until when.
    ---
    get:
      summary: Whether a user holds an entitlement now
      tags: [backend]
      security: [{apiKey: []}]
      parameters:
        - TelegramId  # components.parameters
        - name: entitlement
          in: path
          required: true
          description: an entitlement key
          schema: {type: string, pattern: "^[a-z0-9][a-z0-9_-]{0,63}$", examples: [premium]}
      responses:
        "200":
          description: "`active: false` (and `expires_at: null`) for a user never seen"
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Entitlement"}
        "400":
          description: not a Telegram user id (`user_invalid`) or not an entitlement key (`entitlement_invalid`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "401": {$ref: "#/components/responses/ApiKeyRefused"}
        "429": {$ref: "#/components/responses/RateLimited"}
    """
    return jsonify(backend_api.check(backend_api.telegram_id(telegram_id), backend_api.entitlement_key(entitlement)))


@bp.post("/users/<telegram_id>/grants")
def grant(telegram_id: str):
    """A promotional grant (source `api`): 201 with the grant; a retry with the same Idempotency-Key answers the same grant.
    ---
    post:
      summary: Grant an entitlement
      tags: [backend]
      security: [{apiKey: []}]
      parameters:
        - TelegramId  # components.parameters
        - name: Idempotency-Key
          in: header
          required: false
          description: a retry with the same key answers the grant the first request made
          schema: {type: string, minLength: 1, maxLength: 200}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              description: exactly one of `days` and `until`
              required: [entitlement]
              properties:
                entitlement: {type: string, description: an entitlement some plan grants}
                days: {type: number, exclusiveMinimum: 0, maximum: 36500}
                until: {type: string, format: date-time, description: a future time with a time zone}
                reason: {type: string, maxLength: 200}
              examples:
                - {entitlement: premium, days: 7, reason: support}
      responses:
        "201":
          description: the grant (with `Idempotent-Replayed` when a retry answers an earlier one)
          headers:
            Idempotent-Replayed:
              description: "`true` when this answers an earlier request with the same Idempotency-Key"
              schema: {type: string, const: "true"}
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Grant"}
        "400":
          description: >-
            not a user id, or an unusable grant (`user_invalid`, `entitlement_required`, `unknown_entitlement`,
            `days_or_until`, `days_invalid`, `until_invalid`, `until_in_past`, `reason_invalid`,
            `idempotency_key_invalid`, `malformed_json`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "401": {$ref: "#/components/responses/ApiKeyRefused"}
        "403": {$ref: "#/components/responses/ApiKeyReadOnly"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "409":
          description: the Idempotency-Key was used for a different request (`idempotency_key_reused`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "413": {$ref: "#/components/responses/PayloadTooLarge"}
    """
    user_id = backend_api.telegram_id(telegram_id)
    known = {plan.entitlement for plan in catalogue()}
    requested = backend_api.parse_grant(json_object(), known)
    done = backend_api.grant(user_id, requested, key=g.api_key, idempotency_key=request.headers.get("Idempotency-Key"))
    # A retry gets the first answer again, marked as a replay (as Stripe marks its own).
    headers = {} if done.created else {"Idempotent-Replayed": "true"}
    return jsonify(entitlements.grant_to_dict(done.grant)), 201, headers


@bp.delete("/grants/<int:grant_id>")
def revoke(grant_id: int):
    """Revoke one grant; answers it with `revoked_at` set.
    ---
    delete:
      summary: Revoke a grant
      tags: [backend]
      security: [{apiKey: []}]
      parameters:
        - name: grant_id
          in: path
          required: true
          schema: {type: integer, minimum: 0}
      responses:
        "200":
          description: the grant, `revoked_at` set
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Grant"}
        "401": {$ref: "#/components/responses/ApiKeyRefused"}
        "403": {$ref: "#/components/responses/ApiKeyReadOnly"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "404":
          description: no such grant (`grant_unknown`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    return jsonify(entitlements.grant_to_dict(backend_api.revoke(grant_id, key=g.api_key)))
