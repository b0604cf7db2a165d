"""Promo codes: days of an entitlement for whoever redeems a code, within its caps, even under a burst.

The cap is a conditional UPDATE (`uses < max_uses`), which the database decides one redemption at a
time on PostgreSQL and SQLite alike; the per-user limit is checked under the user's row lock.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import peewee

from app import entitlements, metrics
from app.clock import utcnow
from app.db import for_update, transaction
from app.entitlements import GrantResult
from app.models import Grant, PromoCode, PromoRedemption, User
from app.ways.guesses import GuessLimit
from app.ways.refusals import Refused

SOURCE = "promo"
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,31}$")
RESULTS = frozenset({"redeemed", "unknown", "expired", "used_up", "already_used", "not_for_you", "disabled", "too_many"})


def normalize(raw: object) -> str | None:
    """The code as stored (upper case, trimmed), or None when it cannot be a code at all."""
    if not isinstance(raw, str):
        return None
    code = raw.strip()
    # Only ASCII is read: `str.upper()` turns `ſ` into S and `ﬀ` into FF, which would match a code never given out.
    code = code.upper() if code.isascii() else ""
    return code if _CODE.fullmatch(code) else None


class CodeError(Exception):
    """An operator's promo code cannot be created as asked."""


@dataclass(frozen=True)
class NewCode:
    """What `promo create` asks for."""

    code: str
    entitlement: str
    days: int
    max_uses: int | None = None
    per_user: int = 1
    expires_at: datetime | None = None
    new_users_only: bool = False


def create(spec: NewCode) -> PromoCode:
    """Create a code; CodeError when it is malformed or taken."""
    code = normalize(spec.code)
    if code is None:
        raise CodeError("a code is 3 to 32 letters, digits, '-' or '_' (matched without regard to case)")
    if not 1 <= spec.days <= 36500:
        raise CodeError("--days must be from 1 to 36500")
    if spec.max_uses is not None and spec.max_uses < 1:
        raise CodeError("--max-uses must be at least 1")
    if spec.per_user < 1:
        raise CodeError("--per-user must be at least 1")
    try:
        with transaction():
            return PromoCode.create(
                code=code, entitlement=spec.entitlement, days=spec.days, max_uses=spec.max_uses, per_user=spec.per_user,
                expires_at=spec.expires_at, new_users_only=spec.new_users_only,
            )
    except peewee.IntegrityError:
        raise CodeError(f"a code {code} exists already") from None


def find(raw: str) -> PromoCode | None:
    """The code, matched without regard to case."""
    code = normalize(raw)
    return PromoCode.get_or_none(PromoCode.code == code) if code else None


def disable(row: PromoCode) -> PromoCode:
    """Stop a code from being redeemed; its redemptions stand."""
    with transaction():
        PromoCode.update(disabled_at=utcnow()).where((PromoCode.id == row.id) & PromoCode.disabled_at.is_null()).execute()
    return PromoCode.get_by_id(row.id)


def redemptions(row: PromoCode) -> list[PromoRedemption]:
    """Who redeemed the code, oldest first."""
    return list(PromoRedemption.select(PromoRedemption, User).join(User).where(PromoRedemption.code == row.id)
                .order_by(PromoRedemption.at, PromoRedemption.id))


def _refuse(reason: str, message: str, status: int, limit: GuessLimit | None, user: User) -> Refused:
    metrics.promo_redemptions.labels(result=reason).inc()
    if limit is not None and reason == "unknown":
        limit.wrong(user.telegram_id)
    return Refused(reason, message, status)


def redeem(user: User, raw: object, *, via: str, limit: GuessLimit | None = None) -> tuple[PromoCode, GrantResult]:
    """Redeem a code for the user; Refused saying why in plain words (unknown, expired, used up, already used, not for you)."""
    if limit is not None and limit.blocked(user.telegram_id):
        metrics.promo_redemptions.labels(result="too_many").inc()
        raise Refused("too_many", "Too many wrong codes. Please wait an hour, then try again.", 429, retry_after=limit.window)
    code = normalize(raw)
    row = PromoCode.get_or_none(PromoCode.code == code) if code else None
    if row is None:
        raise _refuse("unknown", "That code is not valid. Check it and try again.", 404, limit, user)
    now = utcnow()
    if row.disabled_at is not None:
        raise _refuse("disabled", "That code is no longer valid.", 410, limit, user)
    if row.expires_at is not None and row.expires_at <= now:
        raise _refuse("expired", "That code has expired.", 410, limit, user)
    with transaction():
        for_update(User.select(User.id).where(User.id == user.id)).get()
        if row.new_users_only and Grant.select().where(Grant.user == user.id).exists():
            raise _refuse("not_for_you", "That code is for new members only.", 403, limit, user)
        used = PromoRedemption.select().where((PromoRedemption.code == row.id) & (PromoRedemption.user == user.id)).count()
        if used >= row.per_user:
            raise _refuse("already_used", "You have already used that code.", 409, limit, user)
        claimed = (
            PromoCode.update(uses=PromoCode.uses + 1)
            .where((PromoCode.id == row.id) & (PromoCode.max_uses.is_null() | (PromoCode.uses < PromoCode.max_uses)))
            .execute()
        )
        if not claimed:
            raise _refuse("used_up", "That code has been used up.", 409, limit, user)
        reference = f"promo:{row.code}:{user.telegram_id}:{used + 1}"
        PromoRedemption.create(code=row, user=user, grant_reference=reference)
        result = entitlements.grant(user, row.entitlement, source=SOURCE, reference=reference, days=row.days, actor=via,
                                    detail={"code": row.code})
        _announce(user, row, result)
    metrics.promo_redemptions.labels(result="redeemed").inc()
    return row, result


def _announce(user: User, row: PromoCode, result: GrantResult) -> None:
    from app.webhooks import outbox

    outbox.emit("promo.redeemed", user, {"code": row.code, "days": row.days, "grant": result.grant.reference},
                entitlement=row.entitlement)


def to_dict(row: PromoCode) -> dict:
    """A code as JSON for the CLI."""
    from app.clock import iso

    return {
        "code": row.code, "entitlement": row.entitlement, "days": row.days, "max_uses": row.max_uses, "uses": row.uses,
        "per_user": row.per_user, "expires_at": iso(row.expires_at), "new_users_only": row.new_users_only,
        "disabled_at": iso(row.disabled_at), "created_at": iso(row.created_at),
    }
