"""An entitlement's emoji status: worn by its holders (who allowed it in the Mini App) until the entitlement ends.

`setUserEmojiStatus` takes an expiry date, so a status set with the entitlement's end goes
away by itself when it runs out; it is set again when the end moves, and removed at once when
the entitlement ends early (a refund, a revocation). Each change reads the holder's current
state rather than the transition that set it off, so the order deliveries arrive in never matters.
"""
from __future__ import annotations

import logging

import requests
import telebot
from telebot.apihelper import ApiException

from app import inbox, metrics
from app.clock import utcnow
from app.config import Settings
from app.db import transaction
from app.models import EmojiStatusAccess, EntitlementState, User
from app.plans import Catalogue, EntitlementSpec
from app.telegram.client import describe_error

log = logging.getLogger(__name__)


def record_access(telegram_id: int, allowed: bool) -> None:
    """Keep the user's answer to the Mini App's permission request."""
    now = utcnow()
    with transaction():
        EmojiStatusAccess.insert(telegram_id=telegram_id, allowed=allowed, updated_at=now).on_conflict(
            conflict_target=[EmojiStatusAccess.telegram_id],
            update={EmojiStatusAccess.allowed: allowed, EmojiStatusAccess.updated_at: now},
        ).execute()


def allowed(telegram_id: int) -> bool:
    """True when the user let the bot set their emoji status."""
    row = EmojiStatusAccess.get_or_none(EmojiStatusAccess.telegram_id == telegram_id)
    return row is not None and row.allowed


def answer_of(telegram_id: int) -> bool | None:
    """The user's answer to the permission request, None when never asked."""
    row = EmojiStatusAccess.get_or_none(EmojiStatusAccess.telegram_id == telegram_id)
    return None if row is None else row.allowed


def held_perks(catalogue: Catalogue, user: User) -> list[str]:
    """The entitlements with an emoji status that the user holds now."""
    return [spec.key for spec in catalogue.entitlements.values() if spec.emoji_status and _held_end(user, spec.key)[0]]


def _held_end(user: User, entitlement: str):
    state = EntitlementState.get_or_none((EntitlementState.user == user.id) & (EntitlementState.entitlement == entitlement))
    if state is None or not state.holding:
        return False, None
    return True, state.ends_at


def apply(bot: telebot.TeleBot, user: User, spec: EntitlementSpec, *, clear_when_not_held: bool) -> str:
    """Set the perk's emoji status until the holder's end, or remove it; returns `set`, `cleared` or `skipped`."""
    holding, end = _held_end(user, spec.key)
    if holding:
        expiry = int(end.timestamp()) if end is not None else None
        bot.set_user_emoji_status(user.telegram_id, spec.emoji_status, expiry)
        return "set"
    if clear_when_not_held:
        bot.set_user_emoji_status(user.telegram_id)  # no emoji id: the status is removed
        return "cleared"
    return "skipped"


def set_now(settings: Settings, catalogue: Catalogue, user: User) -> list[str]:
    """Set every perk the user holds now (just after they allowed it); returns the entitlements set."""
    from app.telegram.client import NotConfigured, client_for

    specs = [spec for spec in catalogue.entitlements.values() if spec.emoji_status]
    if not specs:
        return []
    try:
        bot = client_for(settings)
    except NotConfigured:
        return []
    done = []
    for spec in specs:
        try:
            if apply(bot, user, spec, clear_when_not_held=False) == "set":
                done.append(spec.key)
                metrics.chat_access.labels(action="emoji_status", result="ok").inc()
        except (ApiException, requests.RequestException) as exc:
            metrics.chat_access.labels(action="emoji_status", result="failed").inc()
            log.warning("emoji status of user %s not set: %s", user.telegram_id, describe_error(exc))
    return done


def on_transition(bot: telebot.TeleBot, user: User, spec: EntitlementSpec, kind: str, reason: str | None) -> str:
    """Bring the emoji status in line with a transition: set while held; removed when it ended early."""
    if not allowed(user.telegram_id):
        raise inbox.Ignore(f"user {user.telegram_id} has not let the bot set their emoji status")
    # An expired end needs nothing: the status was set to expire with it.
    return apply(bot, user, spec, clear_when_not_held=not (kind == "ended" and reason == "expired"))
