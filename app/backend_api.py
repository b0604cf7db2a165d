"""What the operator's backend may ask and do through `/api/v1`: check, grant and revoke entitlements."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from app import entitlements, subscriptions, text, users
from app.clock import MAX_DAYS, iso, utcnow
from app.models import ApiKey, Grant, LedgerEntry, User

SOURCE = "api"
MAX_TELEGRAM_ID = 2**53 - 1
MAX_REASON = 200
MAX_IDEMPOTENCY_KEY = 200
ENTITLEMENT_KEY = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}\Z")
MAX_ROW_ID = 2**63 - 1  # the largest id a row can have (SQLite's and PostgreSQL's BIGINT)


class Refused(Exception):
    """A request the API answers with a 4xx: its status, a stable code and a message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def telegram_id(raw: str) -> int:
    """A Telegram user id from a path segment; 400 `user_invalid` for anything else."""
    value = text.ascii_int(raw)
    if value is None or not 0 < value <= MAX_TELEGRAM_ID:
        shown = text.visible(raw[:40])
        raise Refused(400, "user_invalid", f"{shown!r} is not a Telegram user id (ASCII digits: a positive integer below 2^53)")
    return value


def entitlement_key(raw: str) -> str:
    """An entitlement key from a path segment (as plan files spell them); 400 `entitlement_invalid` for anything else."""
    if not ENTITLEMENT_KEY.match(raw):
        shown = text.visible(raw[:64])
        raise Refused(400, "entitlement_invalid", f"{shown!r} is not an entitlement key (a-z, 0-9, _ and -, at most 64)")
    return raw


def check(user_id: int, entitlement: str) -> dict:
    """Whether the user holds the entitlement now, and until when (a user never seen holds nothing)."""
    end = entitlements.end_for(user_id, entitlement)
    return {"entitlement": entitlement, "active": end is not None, "expires_at": None if end in (None, datetime.max) else iso(end)}


def user_summary(user_id: int) -> dict:
    """The user and what they hold; 404 `unknown_user` when the service has never seen them."""
    user = users.find_user(user_id)
    if user is None:
        raise Refused(404, "unknown_user", f"no user with Telegram id {user_id} is known here")
    owned = [subscriptions.to_dict(row) for row in subscriptions.of_user(user)]
    return {
        "user": users.user_to_dict(user), "entitlements": entitlements.summary(user), "ways_in": ways_in(user),
        "subscriptions": owned,
    }


def ways_in(user) -> dict:
    """The user's trials, promo code redemptions, and gifts given and received."""
    from app.clock import iso
    from app.models import PromoRedemption, Trial
    from app.ways import gifts

    trials = [{"entitlement": t.entitlement, "plan": t.plan, "via": t.via, "started_at": iso(t.started_at)}
              for t in Trial.select().where(Trial.user == user.id).order_by(Trial.id)]
    redeemed = [{"code": r.code.code, "entitlement": r.code.entitlement, "days": r.code.days, "at": iso(r.at)}
                for r in PromoRedemption.select().where(PromoRedemption.user == user.id).order_by(PromoRedemption.id)]
    return {"trials": trials, "promo_redemptions": redeemed, "gifts": gifts.gift_lines(user)}


@dataclass(frozen=True)
class GrantRequest:
    """A validated `POST /api/v1/users/{id}/grants` body."""

    entitlement: str
    days: float | None
    until: datetime | None
    reason: str | None

    def fingerprint(self, user_id: int) -> dict:
        """What a retry with the same Idempotency-Key must repeat, the user included."""
        return {"user": user_id, "entitlement": self.entitlement, "days": self.days, "until": iso(self.until), "reason": self.reason}


def parse_grant(body: dict, known: set[str], now: datetime | None = None) -> GrantRequest:
    """Check a grant request: a known entitlement, exactly one of `days` and `until` (in the future), a short reason."""
    now = now or utcnow()
    entitlement = body.get("entitlement")
    if not isinstance(entitlement, str) or not entitlement:
        raise Refused(400, "entitlement_required", 'send {"entitlement": "<key>", "days": N} or {"entitlement", "until"}')
    if entitlement not in known:
        raise Refused(400, "unknown_entitlement", f"no plan grants {entitlement[:64]!r}; known: {', '.join(sorted(known)) or 'none'}")
    has_days, has_until = body.get("days") is not None, body.get("until") is not None
    if has_days == has_until:
        raise Refused(400, "days_or_until", 'give exactly one of "days" (a number) and "until" (an ISO 8601 time)')
    days = until = None
    if has_days:
        days = body["days"]
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= MAX_DAYS:
            raise Refused(400, "days_invalid", f'"days" must be a number above 0 and at most {MAX_DAYS}')
        days = float(days)
    else:
        until = _parse_time(body["until"])
        if until <= now:
            raise Refused(400, "until_in_past", f'"until" must be in the future (now is {iso(now)})')
        if until > now + timedelta(days=MAX_DAYS):
            raise Refused(400, "until_too_late", f'"until" must be at most {MAX_DAYS} days from now, as "days" is')
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON or not text.storable(reason)):
        raise Refused(400, "reason_invalid", f'"reason" must be a string of at most {MAX_REASON} characters, without NUL or lone surrogates')
    return GrantRequest(entitlement, days, until, reason)


def _parse_time(value) -> datetime:
    if not isinstance(value, str):
        raise Refused(400, "until_invalid", '"until" must be an ISO 8601 time such as 2030-01-31T12:00:00Z')
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(400, "until_invalid", '"until" must be an ISO 8601 time such as 2030-01-31T12:00:00Z') from None
    if parsed.tzinfo is None:
        raise Refused(400, "until_invalid", '"until" needs a time zone (for example a trailing Z for UTC)')
    try:
        return parsed.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # 9999-12-31T23:30-01:00 is past the last representable UTC time
        raise Refused(400, "until_invalid", '"until" must be a time between the years 1 and 9999 in UTC') from None


@dataclass(frozen=True)
class Granted:
    """The grant an API request made, and whether this request made it (False: a retry)."""

    grant: Grant
    created: bool


def grant(user_id: int, request: GrantRequest, *, key: ApiKey, idempotency_key: str | None) -> Granted:
    """Grant by the backend's request, once per Idempotency-Key; 409 when a key is reused for another request."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise Refused(400, "idempotency_key_invalid", f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    # The reference is unique per source, so a retried request finds the grant its first try made.
    reference = f"key{key.id}:{idempotency_key or uuid.uuid4().hex}"
    existing = entitlements.find_grant(SOURCE, reference)
    if existing is not None:
        return Granted(_same_request(existing, request, user_id), False)
    user = users.ensure_user(user_id)
    detail = {"api_key": key.id, "reason": request.reason, "request": request.fingerprint(user_id)}
    result = entitlements.grant(user, request.entitlement, source=SOURCE, reference=reference, days=request.days,
                                until=request.until, actor=f"api:{key.name}", detail=detail)
    if not result.created:
        return Granted(_same_request(result.grant, request, user_id), False)
    return Granted(result.grant, True)


def _same_request(existing: Grant, request: GrantRequest, user_id: int) -> Grant:
    entry = LedgerEntry.get_or_none(
        (LedgerEntry.source == SOURCE) & (LedgerEntry.reference == existing.reference) & LedgerEntry.action.in_(("grant", "extend"))
    )
    first = (entry.detail or {}).get("request") if entry is not None else None
    if first is None or first != request.fingerprint(user_id):
        raise Refused(409, "idempotency_key_reused", "this Idempotency-Key was used for a different grant request")
    return existing


def revoke(grant_id: int, *, key: ApiKey) -> Grant:
    """Revoke one grant (any source) and answer it with `revoked_at` set; 404 `grant_unknown` when there is none."""
    # An id beyond any row's is not even looked up: SQLite cannot bind it.
    row = Grant.get_or_none(Grant.id == grant_id) if 0 <= grant_id <= MAX_ROW_ID else None
    if row is None:
        raise Refused(404, "grant_unknown", f"there is no grant {grant_id}")
    entitlements.revoke_reference(row.source, row.reference, reason="revoked", actor=f"api:{key.name}")
    return Grant.select(Grant, User).join(User).where(Grant.id == grant_id).get()


__all__ = ["Refused", "check", "entitlement_key", "grant", "parse_grant", "revoke", "telegram_id", "user_summary"]
