"""Users, known by their Telegram id."""
from __future__ import annotations

import peewee

from app.clock import utcnow
from app.db import for_update, is_postgres, lock_payment, payment_lock, transaction
from app.models import User
from app.text import cleaned

PROFILE_FIELDS = ("first_name", "last_name", "username", "language_code", "is_premium")


def find_user(telegram_id: int) -> User | None:
    """The user with this Telegram id, or None."""
    return User.get_or_none(User.telegram_id == int(telegram_id))


def ensure_user(telegram_id: int, **profile) -> User:
    """The user with this Telegram id, created if new and updated with any profile fields given.

    A field given as None is cleared (Telegram omits `last_name` and `username` when the user has
    none: see `profile_from_telegram`); a field not given is left as it is.
    """
    telegram_id = int(telegram_id)
    values = {k: v for k, v in profile.items() if k in PROFILE_FIELDS}
    user = find_user(telegram_id)
    if user is None:
        try:
            with transaction():
                return User.create(telegram_id=telegram_id, **values)
        except peewee.IntegrityError:
            user = User.get(User.telegram_id == telegram_id)
    changed = {k: v for k, v in values.items() if getattr(user, k) != v}
    if changed:
        changed["updated_at"] = utcnow()
        User.update(**changed).where(User.id == user.id).execute()
        for key, value in changed.items():
            setattr(user, key, value)
    return user


def lock_user(
    telegram_id: int, *, stripe_customer_id: str | None = None, payment: tuple[str, str] | None = None, **profile
) -> User:
    """`ensure_user`, with the user's row locked until the caller's transaction ends (the lock `entitlements.grant` takes).

    On PostgreSQL one `INSERT … ON CONFLICT DO UPDATE … RETURNING`: the update takes the row's lock,
    and `payment` (source, reference) has that payment's lock (`db.lock_payment`) taken in the same
    statement, after the row's. `stripe_customer_id` is remembered when the user has none yet (the
    first one stored wins); the caller has checked that no other user holds it.
    """
    telegram_id = int(telegram_id)
    values = {k: v for k, v in profile.items() if k in PROFILE_FIELDS}
    if not is_postgres():
        user = ensure_user(telegram_id, **values)
        if stripe_customer_id and not user.stripe_customer_id:
            User.update(stripe_customer_id=stripe_customer_id).where(User.id == user.id).execute()
            user.stripe_customer_id = stripe_customer_id
        for_update(User.select(User.id).where(User.id == user.id)).get()  # SQLite's write transaction holds it already
        if payment is not None:
            lock_payment(*payment)
        return user
    now = utcnow()
    changed = peewee.Expression(
        peewee.fn.ROW(*[getattr(User, k) for k in values]), "IS DISTINCT FROM", peewee.fn.ROW(*[peewee.EXCLUDED[k] for k in values])
    )
    update = {getattr(User, k): peewee.EXCLUDED[k] for k in values}
    update[User.updated_at] = peewee.Case(None, [(changed, now)], User.updated_at) if values else User.updated_at
    if stripe_customer_id:
        values["stripe_customer_id"] = stripe_customer_id
        update[User.stripe_customer_id] = peewee.fn.COALESCE(User.stripe_customer_id, peewee.EXCLUDED.stripe_customer_id)
    query = (
        User.insert(telegram_id=telegram_id, created_at=now, updated_at=now, **values)
        .on_conflict(conflict_target=[User.telegram_id], update=update)
        .returning(*User._meta.sorted_fields, *([payment_lock(*payment).alias("payment_locked")] if payment else []))
        .objects(User)
    )
    return next(iter(query.execute()))


def profile_from_telegram(data: dict) -> dict:
    """Profile fields from a Telegram `User` object (an update's `from`, a Mini App initData's `user`), its text
    cleaned so any database stores it (see `app.text`), for `ensure_user` / `lock_user`.

    Such an object always carries the user's whole name: Telegram leaves `last_name` and `username` out
    when the user has none, so their absence (or an empty string) is None here, which clears a stored
    one. `language_code` is left out when absent (Telegram does not send it everywhere; the last one
    known stays), and `is_premium` absent is False.
    """
    profile = {
        "first_name": _words(data.get("first_name")) or "",
        "last_name": _words(data.get("last_name")) or None,
        "username": _words(data.get("username")) or None,
        "is_premium": bool(data.get("is_premium", False)),
    }
    language = _words(data.get("language_code"))
    if language:
        profile["language_code"] = language
    return profile


def _words(value) -> str | None:
    return cleaned(value) if isinstance(value, str) else None


def user_to_dict(user: User) -> dict:
    """A user as JSON."""
    return {
        "id": user.telegram_id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "username": user.username,
        "language_code": user.language_code,
        "is_premium": user.is_premium,
    }
