"""API keys for the operator's backend (`/api/v1`): shown once, stored only as a hash."""
from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass

from app.clock import utcnow
from app.db import transaction
from app.models import ApiKey, ApiKeyUsage

PREFIX = "ek_"
# A key is `ek_<public id>_<secret>`; the public id finds the row, the whole key's hash must match.
_PUBLIC_ID_BYTES = 6
_SECRET_BYTES = 24
# Compared against when no row matches, so an unknown id takes as long as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"entitle-no-such-key").hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    """A new key: its row, and the key itself, which is never shown again."""

    row: ApiKey
    key: str


def _hash(key: str) -> str:
    # Keys carry 192 random bits, so a fast hash is as good as a slow one against guessing.
    return hashlib.sha256(key.encode()).hexdigest()


def create(name: str, *, read_only: bool = False) -> CreatedKey:
    """Make a key named `name` (one that may only read, with `read_only`); the returned key is the only copy."""
    public_id = secrets.token_hex(_PUBLIC_ID_BYTES)
    key = f"{PREFIX}{public_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    with transaction():
        row = ApiKey.create(name=name, public_id=public_id, key_hash=_hash(key), read_only=read_only)
    return CreatedKey(row, key)


WINDOW = 60  # seconds: API_RATE_LIMIT counts requests per key per minute


def over_rate(row: ApiKey, limit: int, now: float | None = None) -> int | None:
    """Count one request of this key; the seconds until its next minute when that makes more than `limit`, else None.

    The count lives in the database, so every web process and host shares it: one upsert per request.
    """
    now = time.time() if now is None else now
    minute = int(now // WINDOW)
    with transaction():
        ApiKeyUsage.insert(api_key=row.id, minute=minute, count=1).on_conflict(
            conflict_target=[ApiKeyUsage.api_key, ApiKeyUsage.minute], update={ApiKeyUsage.count: ApiKeyUsage.count + 1}
        ).execute()
        count = ApiKeyUsage.select(ApiKeyUsage.count).where(
            (ApiKeyUsage.api_key == row.id) & (ApiKeyUsage.minute == minute)
        ).scalar()
        if count == 1:  # the key's first request this minute: its older minutes are of no use any more
            ApiKeyUsage.delete().where((ApiKeyUsage.api_key == row.id) & (ApiKeyUsage.minute < minute)).execute()
    if count <= limit:
        return None
    return max(1, math.ceil((minute + 1) * WINDOW - now))


def authenticate(key: str | None) -> ApiKey | None:
    """The live key row this key belongs to, or None; compared in constant time whatever is wrong."""
    public_id = _public_id(key or "")
    row = ApiKey.get_or_none((ApiKey.public_id == public_id) & ApiKey.revoked_at.is_null()) if public_id else None
    matches = hmac.compare_digest(_hash(key or ""), row.key_hash if row is not None else _DUMMY_HASH)
    return row if (row is not None and matches) else None


def _public_id(key: str) -> str | None:
    if not key.startswith(PREFIX):
        return None
    public_id, sep, _ = key[len(PREFIX):].partition("_")
    return public_id if sep and len(public_id) == 2 * _PUBLIC_ID_BYTES else None


def revoke(key_id: int) -> ApiKey | None:
    """Revoke a key at once; None when there is no such key."""
    with transaction():
        row = ApiKey.get_or_none(ApiKey.id == key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
            row.save(only=[ApiKey.revoked_at])
    return row


def list_keys() -> list[ApiKey]:
    """Every key, newest first."""
    return list(ApiKey.select().order_by(ApiKey.id.desc()))


def key_to_dict(row: ApiKey) -> dict:
    """A key as JSON, without anything secret."""
    from app.clock import iso

    return {"id": row.id, "name": row.name, "prefix": f"{PREFIX}{row.public_id}_…", "read_only": bool(row.read_only),
            "created_at": iso(row.created_at), "revoked_at": iso(row.revoked_at)}
