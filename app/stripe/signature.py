"""The `Stripe-Signature` check on a webhook's raw body, with several secrets while one is rotated.

Stripe's scheme (https://docs.stripe.com/webhooks#verify-manually): the header is
`t=<unix time>,v1=<hex>[,v1=<hex>…][,v0=…]`, and each `v1` is
`HMAC-SHA256(key=endpoint secret, msg=f"{t}.{raw body}")` in lowercase hex. While an endpoint
secret is rolled, Stripe signs with the old and new secret and sends one `v1` for each; we
accept an event when any configured secret matches any `v1`. Other schemes (`v0`) are
ignored so a forger cannot downgrade the check.

This follows `stripe.WebhookSignature.verify_header` but is written out here because that
function takes one secret, reads the clock itself, raises on a body that is not UTF-8
(`UnicodeDecodeError`, not its own error) and reports failures as prose rather than codes.
The tests cross-check this module against stripe-python's own signer.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Sequence

from app.metrics import STRIPE_EVENT_TYPES
from app.text import unstorable

__all__ = ["DEFAULT_TOLERANCE", "REASONS", "SignatureError", "event_shape_problem", "sign_payload", "verify_webhook"]

DEFAULT_TOLERANCE = 300
SCHEME = "v1"

REASONS = {
    "secret_missing": "no webhook signing secret is configured",
    "header_missing": "the Stripe-Signature header is missing",
    "header_malformed": "the Stripe-Signature header is not `t=<timestamp>,v1=<signature>…`",
    "no_matching_signature": "no v1 signature in the header matches the payload for any configured secret",
    "timestamp_outside_tolerance": "the signed timestamp is outside the tolerance window",
    "payload_invalid": "the signed payload is not a JSON event object",
}

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class SignatureError(Exception):
    """A webhook failed verification; `reason` is one of `REASONS`."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or REASONS.get(reason, reason)

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def _as_bytes(payload: bytes | bytearray | memoryview | str) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)


def _compute(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header value (`t=…,v1=…`) for `payload`, exactly as Stripe builds it."""
    if timestamp is None:
        timestamp = int(time.time())
    return f"t={int(timestamp)},{SCHEME}={_compute(_as_bytes(payload), secret, int(timestamp))}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        if not item.strip():
            continue
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError("header_malformed")
        if key == "t":
            timestamps.append(value.strip())
        elif key == SCHEME:
            signatures.append(value.strip())
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise SignatureError("header_malformed")
    return int(timestamps[0]), signatures


def verify_webhook(
    payload: bytes | str,
    header: str | None,
    secrets: Sequence[str] | str,
    *,
    tolerance: int | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> dict:
    """The event in a webhook body as a plain dict, once its signature matches one of `secrets`."""
    if isinstance(secrets, str):
        secrets = [secrets]
    keys = [s.strip() for s in secrets if s and s.strip()]
    if not keys:
        raise SignatureError("secret_missing")
    if header is None or not header.strip():
        raise SignatureError("header_missing")
    timestamp, candidates = _parse_header(header)
    body = _as_bytes(payload)

    # Compare every (secret, signature) pair without stopping early, so the time taken
    # does not tell which secret or which entry came close.
    matched = False
    for key in keys:
        expected = _compute(body, key, timestamp).encode("ascii")
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("no_matching_signature")

    if tolerance:
        current = time.time() if now is None else now
        if abs(current - timestamp) > tolerance:
            raise SignatureError(
                "timestamp_outside_tolerance",
                f"signed at t={timestamp}, {int(current - timestamp)} s before now; tolerance {tolerance} s",
            )

    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SignatureError("payload_invalid", "the signed payload is not UTF-8 JSON") from None
    problem = event_shape_problem(event)
    if problem:
        raise SignatureError("payload_invalid", f"the signed payload is not a Stripe event: {problem}")
    return event


MAX_OBJECT_ID = 255  # Stripe's ids are far shorter; the grants' references hold this many


def event_shape_problem(event: object) -> str | None:
    """What keeps a parsed payload from being a Stripe event (naming the field), or None."""
    if not isinstance(event, dict):
        return "it is not a JSON object"
    if event.get("object") != "event":
        return "`object` is not \"event\""
    for field in ("id", "type"):
        if not isinstance(event.get(field), str):
            return f"`{field}` is not a string"
    if not isinstance(event.get("data"), dict):
        return "`data` is not an object"
    if not isinstance(event["data"].get("object"), dict):
        return "`data.object` is not an object"
    field = unstorable(event)
    if field is not None:
        return f"`{field}` holds a NUL character or a lone surrogate, which Stripe never sends"
    object_id = event["data"]["object"].get("id")
    if event["type"] in STRIPE_EVENT_TYPES and not (isinstance(object_id, str) and 0 < len(object_id) <= MAX_OBJECT_ID):
        return f"`data.object.id` is not a string of 1 to {MAX_OBJECT_ID} characters"
    return None
