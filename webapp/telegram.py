"""`POST /webhooks/telegram`: check the secret token and the update's shape, answer pre-checkout queries, record the rest."""
from __future__ import annotations

import hmac
import logging

from flask import Blueprint, jsonify, request
from telebot import types

import peewee

from app import inbox, metrics
from app.access import join_queries
from app.models import JoinQuery
from app.telegram import SOURCE, commands, payments, shapes, subscriptions
from app.telegram.client import NotConfigured, client_for, describe_error
from webapp import paywall
from webapp.body import json_object
from webapp.context import catalogue, runtime, settings
from webapp.errors import ApiError

log = logging.getLogger(__name__)

bp = Blueprint("telegram", __name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/webhooks/telegram"


def _verify_secret() -> None:
    expected = settings().telegram_webhook_secret
    if not expected:
        log.warning("a Telegram update arrived but TELEGRAM_WEBHOOK_SECRET is not set; refused")
        raise ApiError(503, "telegram_not_configured", "this service does not accept Telegram updates yet")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "invalid_secret_token", f"missing or wrong {SECRET_HEADER} header")


def _parse_update() -> tuple[dict, types.Update]:
    data = json_object(code="malformed_update", what="a Telegram Update")
    try:
        data = shapes.admit_update(data)
    except shapes.MalformedUpdate as exc:
        raise ApiError(400, "malformed_update", str(exc)) from None
    try:
        return data, types.Update.de_json(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ApiError(400, "malformed_update", "the body is not a Telegram Update") from None


def _pre_checkout(query: types.PreCheckoutQuery):
    decision = payments.decide_pre_checkout(catalogue(), query)
    metrics.telegram_payments.labels(result="checkout_approved" if decision.ok else "checkout_declined").inc()
    if not decision.ok:
        log.info("pre-checkout %s declined: %s", query.id, decision.reason)
    # Telegram runs a method call returned as the webhook answer: the query is answered within this request.
    return jsonify(decision.answer(query.id))


def _join_query(data: dict, request_: types.ChatJoinRequest):
    """Decide a join query in this request (Telegram waits 10 s for the answer); record it in the inbox first."""
    recorded = inbox.record(SOURCE, f"joinq:{request_.query_id}", "chat_join_query", data, subject=request_.from_user.id)
    if not recorded.created:
        if recorded.should_enqueue:
            runtime().enqueue(recorded.event.id)
        row = JoinQuery.get_or_none(JoinQuery.query_id == request_.query_id)
        return jsonify({"ok": True, "status": "duplicate", "event": recorded.event.id, "decision": row.state if row else None})
    try:
        bot = client_for(settings())
    except NotConfigured:
        bot = None
    try:
        door = join_queries.open_query(
            settings(), catalogue(), bot, request_, lambda row: paywall.launch_url(settings(), row),
        )
        decision = door.decision
    except peewee.DatabaseError as exc:
        # Too slow to decide in time: the request goes to the chat's queue, where a worker decides it as a plain join request.
        log.warning("join query %s not decided at the door (%s); queued for the workers", request_.query_id, type(exc).__name__)
        decision = _queue_now(bot, request_.query_id)
    try:
        runtime().hand_off(recorded.event)
    except Exception as exc:  # noqa: BLE001 - the row stays pending and the sweeper hands it off
        log.warning("join query %s not handed off (%s); the sweeper will", request_.query_id, type(exc).__name__)
    return jsonify({"ok": True, "status": "recorded", "event": recorded.event.id, "decision": decision})


def _queue_now(bot, query_id: str) -> str:
    if bot is None:
        return "failed"
    try:
        bot.answer_chat_join_request_query(query_id, join_queries.QUEUE)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the worker takes it from the chat's queue
        log.warning("join query %s not answered: %s", query_id, describe_error(exc))
        return "failed"
    metrics.chat_access.labels(action="query_queued", result="ok").inc()
    return "queued"


def _accept(external_id: str, type_: str, data: dict):
    recorded = runtime().accept(SOURCE, external_id, type_, data, subject=shapes.subject_of(data))
    return jsonify({"ok": True, "status": "recorded" if recorded.created else "duplicate", "event": recorded.event.id})


@bp.post(WEBHOOK_PATH)
def webhook():
    """Verify the secret token, check the update's shape, answer pre-checkout queries, record payments, refunds, commands and subscription changes.
    ---
    post:
      summary: Telegram's updates (setWebhook)
      tags: [webhooks]
      security: [{telegramSecret: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              description: a Telegram Update; the fields the service acts on are checked, the rest pass through
              required: [update_id]
              properties:
                update_id: {type: integer, minimum: 0}
              examples:
                - {update_id: 1, message: {message_id: 1, date: 1700000000, chat: {id: 42, type: private}, from: {id: 42, is_bot: false, first_name: Ann}, text: /start}}
      responses:
        "200":
          description: >-
            the update was recorded (`recorded`; `duplicate` when seen before) or ignored, or, for a
            `pre_checkout_query`, the `answerPreCheckoutQuery` call that Telegram runs as the answer
          content:
            application/json:
              schema:
                oneOf:
                  - $ref: "#/components/schemas/TelegramWebhookAnswer"
                  - $ref: "#/components/schemas/AnswerPreCheckoutQuery"
        "400":
          description: the body is not a Telegram Update of the expected shape (`malformed_update`, `malformed_body`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "401":
          description: a missing or wrong secret-token header (`invalid_secret_token`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "413": {$ref: "#/components/responses/PayloadTooLarge"}
        "503":
          description: "`TELEGRAM_WEBHOOK_SECRET` is not set (`telegram_not_configured`)"
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    _verify_secret()
    data, update = _parse_update()
    if update.pre_checkout_query is not None:
        return _pre_checkout(update.pre_checkout_query)
    if update.chat_join_request is not None:
        request_ = update.chat_join_request
        if request_.query_id:
            return _join_query(data, request_)
        return _accept(f"join:{request_.chat.id}:{request_.from_user.id}:{request_.date}", "chat_join_request", data)
    if update.subscription is not None:
        return _accept(f"subscription:{update.update_id}", "subscription", data)
    query = update.callback_query
    if query is not None and subscriptions.parse_callback(query.data) is not None:
        return _accept(f"callback:{query.id}", "callback_query", data)
    message = update.message
    if message is not None:
        if message.successful_payment is not None:
            return _accept(message.successful_payment.telegram_payment_charge_id, "successful_payment", data)
        # pyTelegramBotAPI parses refunded_payment but gives the message no content type.
        if message.refunded_payment is not None:
            return _accept(f"refund:{message.refunded_payment.telegram_payment_charge_id}", "refunded_payment", data)
        if message.chat.type == "private" and isinstance(message.text, str) and commands.parse(message.text) is not None:
            return _accept(f"update:{update.update_id}", "command", data)
    return jsonify({"ok": True, "status": "ignored"})
