"""The chat door's Mini App side: the paywall a join query opens, and the emoji-status permission.

A paywall's launch URL carries a token the service signed (itsdangerous, keyed by the session
secret) naming the query, its chat and its requester; the paywall API serves it only to that
requester, signed in with their own initData, so a link cannot be forged, moved to another chat
or used by another user.
"""
from __future__ import annotations

from flask import Blueprint, jsonify
from flask_jwt_extended import jwt_required
from itsdangerous import BadSignature, URLSafeSerializer

from app.access import emoji_status, join_queries
from app.config import Settings, jwt_secret
from app.models import JoinQuery
from webapp.body import json_object
from webapp.context import catalogue, settings
from webapp.errors import ApiError
from webapp.purchase import signed_in_user

bp = Blueprint("paywall", __name__)

_SALT = "entitle-join-paywall"


def _serializer(settings_: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(jwt_secret(settings_), salt=_SALT)


def launch_url(settings_: Settings, row: JoinQuery) -> str:
    """The Mini App in paywall mode for this join query."""
    token = _serializer(settings_).dumps({"q": row.id, "c": row.chat, "u": row.telegram_id})
    return f"{settings_.public_url}/app?join={token}"


def _query_for(token: str, telegram_id: int) -> JoinQuery:
    try:
        data = _serializer(settings()).loads(token)
    except BadSignature:
        raise ApiError(404, "paywall_not_found", "this paywall link is not valid") from None
    if not isinstance(data, dict) or data.get("u") != telegram_id:
        raise ApiError(403, "paywall_not_yours", "this paywall link is another user's")
    row = JoinQuery.get_or_none(JoinQuery.id == data.get("q"))
    if row is None or row.chat != data.get("c") or row.telegram_id != telegram_id:
        raise ApiError(404, "paywall_not_found", "this paywall link names no request of yours")
    return row


@bp.get("/api/paywall/<token>")
@jwt_required()
def paywall(token: str):
    """The paywall of a join request: the chat and the plans that let the signed-in requester in.
    ---
    get:
      summary: The paywall of a chat join request (the Mini App opened by sendChatJoinRequestWebApp)
      tags: [mini app]
      security: [{sessionToken: []}]
      parameters:
        - {name: token, in: path, required: true, schema: {type: string, maxLength: 512}, description: the `join` parameter of the launch URL}
      responses:
        "200":
          description: the chat, the request's state and the plans that grant an entitlement listing the chat
          content:
            application/json:
              schema:
                type: object
                required: [chat, state, plans]
                properties:
                  chat: {type: object, properties: {id: {type: integer}, title: {type: [string, "null"]}}}
                  state: {type: string, description: "paywall (waiting), paid, invited, unpaid, approved, declined, queued or failed"}
                  plans: {type: array, items: {$ref: "#/components/schemas/Plan"}}
        "401": {$ref: "#/components/responses/SessionRefused"}
        "403":
          description: the link is another user's (`paywall_not_yours`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "404":
          description: the link is not valid or names no request (`paywall_not_found`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    if len(token) > 512:
        raise ApiError(404, "paywall_not_found", "this paywall link is not valid")
    user = signed_in_user()
    row = _query_for(token, user.telegram_id)
    current = catalogue()
    keys = {spec.key for spec in join_queries.chat_specs(current, row.chat)}
    plans = [plan.to_dict() for plan in current if plan.entitlement in keys]
    return jsonify({"chat": {"id": row.chat, "title": row.chat_title}, "state": row.state, "plans": plans})


@bp.get("/api/emoji-status")
@jwt_required()
def emoji_status_perks():
    """Whether the signed-in user let the bot set their emoji status, and the perks they hold that would use it.
    ---
    get:
      summary: The emoji-status perks of the signed-in user
      tags: [mini app]
      security: [{sessionToken: []}]
      responses:
        "200":
          description: "`allowed` is null until the user answered; `perks` lists held entitlements with an emoji status"
          content:
            application/json:
              schema:
                type: object
                required: [allowed, perks]
                properties:
                  allowed: {type: [boolean, "null"]}
                  perks: {type: array, items: {type: string}}
        "401": {$ref: "#/components/responses/SessionRefused"}
    """
    user = signed_in_user()
    return jsonify({"allowed": emoji_status.answer_of(user.telegram_id), "perks": emoji_status.held_perks(catalogue(), user)})


@bp.post("/api/emoji-status")
@jwt_required()
def emoji_status_access():
    """Record the signed-in user's answer to `requestEmojiStatusAccess`; allowed, the perk's emoji status is set now.
    ---
    post:
      summary: The user's answer to the Mini App's emoji-status permission request
      tags: [mini app]
      security: [{sessionToken: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [allowed]
              properties:
                allowed: {type: boolean}
      responses:
        "200":
          description: recorded; `set` lists the entitlements whose emoji status was set
          content:
            application/json:
              schema:
                type: object
                required: [allowed, set]
                properties:
                  allowed: {type: boolean}
                  set: {type: array, items: {type: string}}
        "400":
          description: 'the body is not {"allowed": true|false} (`invalid_request`, `malformed_json`)'
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "401": {$ref: "#/components/responses/SessionRefused"}
    """
    body = json_object()
    allowed = body.get("allowed")
    if not isinstance(allowed, bool):
        raise ApiError(400, "invalid_request", "'allowed' must be true or false")
    user = signed_in_user()
    emoji_status.record_access(user.telegram_id, allowed)
    done = emoji_status.set_now(settings(), catalogue(), user) if allowed else []
    return jsonify({"allowed": allowed, "set": done})
