"""Mini App session tokens (flask-jwt-extended), with JSON errors for every bad token."""
from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask, request
from flask_jwt_extended import JWTManager

from app.config import Settings, jwt_secret
from webapp.errors import error_response

jwt = JWTManager()

_BEARER_SCHEME = re.compile(r"(^|,)(\s*)bearer(?=\s)", re.IGNORECASE)


def init_auth(app: Flask, settings: Settings) -> None:
    """Configure HS256 tokens with the configured (or development) secret and lifetime."""
    app.before_request(_canonical_bearer_scheme)
    app.config.update(
        JWT_SECRET_KEY=jwt_secret(settings),
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=settings.jwt_access_token_minutes),
        JWT_TOKEN_LOCATION=["headers"],
        JWT_HEADER_TYPE="Bearer",
    )
    jwt.init_app(app)


def _canonical_bearer_scheme() -> None:
    # Auth schemes are case-insensitive (RFC 9110), but flask-jwt-extended compares "Bearer" exactly.
    header = request.environ.get("HTTP_AUTHORIZATION")
    if header:
        request.environ["HTTP_AUTHORIZATION"] = _BEARER_SCHEME.sub(r"\1\2Bearer", header)


@jwt.token_verification_loader
def _has_expiry(header: dict, payload: dict) -> bool:
    # PyJWT checks `exp` only when present: a token without one would never expire.
    exp = payload.get("exp")
    return isinstance(exp, (int, float)) and not isinstance(exp, bool)


@jwt.token_verification_failed_loader
def _no_expiry(header: dict, payload: dict):
    return error_response(401, "token_invalid", "the session token has no expiry; sign in again")


@jwt.unauthorized_loader
def _missing(reason: str):
    return error_response(401, "token_missing", "send Authorization: Bearer <token> from POST /api/session")


@jwt.invalid_token_loader
def _invalid(reason: str):
    return error_response(401, "token_invalid", "the session token is not valid; sign in again")


@jwt.expired_token_loader
def _expired(header: dict, payload: dict):
    return error_response(401, "token_expired", "the session token has expired; sign in again")


@jwt.revoked_token_loader
def _revoked(header: dict, payload: dict):
    return error_response(401, "token_revoked", "the session token was revoked; sign in again")


@jwt.needs_fresh_token_loader
def _not_fresh(header: dict, payload: dict):
    return error_response(401, "token_not_fresh", "sign in again")


@jwt.user_lookup_error_loader
def _unknown_user(header: dict, payload: dict):
    return error_response(401, "user_unknown", "the user of this token no longer exists")
