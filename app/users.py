"""Users, known by their Telegram id."""
from __future__ import annotations

import peewee

from app.clock import utcnow
from app.db import transaction
from app.models import User

PROFILE_FIELDS = ("first_name", "last_name", "username", "language_code", "is_premium")


def find_user(telegram_id: int) -> User | None:
    """The user with this Telegram id, or None."""
    return User.get_or_none(User.telegram_id == int(telegram_id))


def ensure_user(telegram_id: int, **profile) -> User:
    """The user with this Telegram id, created if new and updated with any profile fields given."""
    telegram_id = int(telegram_id)
    values = {k: v for k, v in profile.items() if k in PROFILE_FIELDS and v is not None}
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


def profile_from_telegram(data: dict) -> dict:
    """Profile fields from a Telegram `User` object."""
    return {
        "first_name": data.get("first_name") or "",
        "last_name": data.get("last_name"),
        "username": data.get("username"),
        "language_code": data.get("language_code"),
        "is_premium": bool(data.get("is_premium", False)),
    }


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
