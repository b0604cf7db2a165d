"""`POST /webhooks/stripe`: verify the signature on the raw body, record the event, enqueue it, answer 200."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from app import inbox, metrics
from app.models import Event, EventStatus
from app.stripe import SOURCE
from app.stripe.client import key_livemode
from app.stripe.customers import event_subject
from app.stripe.signature import SignatureError, verify_webhook
from webapp.context import runtime, settings
from webapp.errors import error_response

log = logging.getLogger(__name__)

bp = Blueprint("stripe", __name__)

WEBHOOK_PATH = "/webhooks/stripe"


# The inbox columns an event's id and type are stored in.
FIELD_LIMITS = {"id": Event.external_id.max_length, "type": Event.type.max_length}


def _length_problem(event: dict) -> str | None:
    """Which of the event's `id` and `type` is empty or longer than its column holds, or None."""
    for field, limit in FIELD_LIMITS.items():
        if not 0 < len(event[field]) <= limit:
            return f"the event's `{field}` must be 1 to {limit} characters long (got {len(event[field])})"
    return None


def _count(type_: str, result: str) -> None:
    metrics.stripe_webhooks.labels(type=type_, result=result).inc()


@bp.post(WEBHOOK_PATH)
def webhook():
    """Accept a Stripe event once its signature matches a configured secret; 400 (and nothing stored) otherwise.
    ---
    post:
      summary: Stripe's events
      tags: [webhooks]
      parameters:
        - name: Stripe-Signature
          in: header
          required: true
          description: "`t=<unix time>,v1=<HMAC-SHA256>` under a `STRIPE_WEBHOOK_SECRET`"
          schema: {type: string}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              description: a Stripe Event, verified byte for byte against the signature
              required: [id, type]
              properties:
                id: {type: string}
                type: {type: string}
                livemode: {type: boolean}
      responses:
        "200":
          description: the event was recorded (`accepted`, `duplicate`), or recorded as ignored (`livemode_mismatch`)
          content:
            application/json:
              schema:
                type: object
                required: [received, id, status, result]
                properties:
                  received: {const: true}
                  id: {type: string}
                  status: {type: string, enum: [pending, processed, failed, ignored]}
                  result: {type: string, enum: [accepted, duplicate, livemode_mismatch]}
        "400":
          description: >-
            the signature does not verify or the event is unusable (`header_missing`, `header_malformed`,
            `no_matching_signature`, `timestamp_outside_tolerance`, `secret_missing`, `payload_invalid`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "413": {$ref: "#/components/responses/PayloadTooLarge"}
    """
    config = settings()
    body = request.get_data(cache=False)
    try:
        event = verify_webhook(body, request.headers.get("Stripe-Signature"), config.stripe_webhook_secrets)
    except SignatureError as exc:
        if exc.reason == "secret_missing":
            log.error("Stripe webhook refused: STRIPE_WEBHOOK_SECRET is not set")
        else:
            log.warning("Stripe webhook refused: %s", exc.reason)
        _count("unverified", "rejected")
        return error_response(400, exc.reason, exc.detail)
    problem = _length_problem(event)
    if problem:
        log.warning("Stripe webhook refused: %s", problem)
        _count("unverified", "rejected")
        return error_response(400, "payload_invalid", problem)

    type_, event_id = event["type"], event["id"]
    expected = key_livemode(config.stripe_secret_key)
    try:
        if expected is not None and bool(event.get("livemode")) != expected:
            note = f"{'live' if event.get('livemode') else 'test'}-mode event, but STRIPE_SECRET_KEY is a {'live' if expected else 'test'} key"
            log.warning("Stripe event %s (%s) recorded as ignored: %s", event_id, type_, note)
            recorded = inbox.record(SOURCE, event_id, type_, event, status=EventStatus.IGNORED, note=note, subject=event_subject(event))
            result = "livemode_mismatch"
        else:
            recorded = runtime().accept(SOURCE, event_id, type_, event, subject=event_subject(event))
            result = "accepted" if recorded.created else "duplicate"
    except Exception:
        _count(type_, "error")
        raise
    _count(type_, result)
    return jsonify({"received": True, "id": event_id, "status": recorded.event.status, "result": result})
