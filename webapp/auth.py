"""Mini App session tokens (flask-jwt-extended), with JSON errors for every bad token."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask_jwt_extended import JWTManager

from app.config import Settings
from webapp.errors import error_response

jwt = JWTManager()


def init_auth(app: Flask, settings: Settings) -> None:
    """Configure HS256 tokens with the configured secret and lifetime."""
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret_key,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=settings.jwt_access_token_minutes),
        JWT_TOKEN_LOCATION=["headers"],
        JWT_HEADER_TYPE="Bearer",
    )
    jwt.init_app(app)


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
