"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under a `whsec_` secret."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
_KEY_BYTES = 32  # the specification asks for 24 to 64 random bytes

USER_AGENT = "entitle-webhooks/1"  # who sends, in place of python-requests


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and the base64 of random key bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode()


def _key(secret: str) -> bytes:
    encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(encoded)


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` value for one attempt."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The headers of one attempt: id (the same on every retry), the attempt's timestamp, and its signature."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
