"""`/api/v1`: the operator's backend checks, grants and revokes entitlements with an API key."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from app import apikeys, backend_api, entitlements
from webapp.body import json_object
from webapp.context import catalogue
from webapp.errors import ApiError, error_response

bp = Blueprint("backend_api", __name__, url_prefix="/api/v1")


@bp.before_request
def _authenticate():
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    row = apikeys.authenticate(key.strip()) if scheme.lower() == "bearer" else None
    if row is None:
        raise ApiError(401, "api_key_invalid", "send Authorization: Bearer <API key> with a key from `entitle apikeys create`")
    g.api_key = row


@bp.errorhandler(backend_api.Refused)
def _refused(exc: backend_api.Refused):
    return error_response(exc.status, exc.code, exc.message)


@bp.get("/users/<telegram_id>")
def user(telegram_id: str):
    """The user and their entitlements; 404 `unknown_user` for a user never seen."""
    return jsonify(backend_api.user_summary(backend_api.telegram_id(telegram_id)))


@bp.get("/users/<telegram_id>/entitlements/<entitlement>")
def check(telegram_id: str, entitlement: str):
    """Whether the user holds the entitlement now, and until when."""
    return jsonify(backend_api.check(backend_api.telegram_id(telegram_id), entitlement))


@bp.post("/users/<telegram_id>/grants")
def grant(telegram_id: str):
    """A promotional grant (source `api`): 201 with the grant; a retry with the same Idempotency-Key answers the same grant."""
    user_id = backend_api.telegram_id(telegram_id)
    known = {plan.entitlement for plan in catalogue()}
    requested = backend_api.parse_grant(json_object(), known)
    done = backend_api.grant(user_id, requested, key=g.api_key, idempotency_key=request.headers.get("Idempotency-Key"))
    # A retry gets the first answer again, marked as a replay (as Stripe marks its own).
    headers = {} if done.created else {"Idempotent-Replayed": "true"}
    return jsonify(entitlements.grant_to_dict(done.grant)), 201, headers


@bp.delete("/grants/<int:grant_id>")
def revoke(grant_id: int):
    """Revoke one grant; answers it with `revoked_at` set."""
    return jsonify(entitlements.grant_to_dict(backend_api.revoke(grant_id, key=g.api_key)))
