"""Telegram chat membership for entitlements: invite links, join requests, removals, reminders, all through the Bot API."""
from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Callable, TypeVar

import requests
import telebot
from telebot import apihelper
from telebot.apihelper import ApiException, ApiTelegramException

from app import inbox, metrics, timeline
from app.clock import iso
from app.config import Settings
from app.telegram import budget
from app.telegram.client import describe_error
from app.telegram.client import NotConfigured, client_for

log = logging.getLogger(__name__)

T = TypeVar("T")

ADMIN_STATUSES = ("creator", "administrator")
MAX_RETRY_AFTER = 30  # seconds an operator's command waits for a flood limit before giving up
RATE_LIMIT_TRIES = 3
# Bot API descriptions that mean the operator must change the chat, not that a retry could help.
_RIGHTS_PROBLEMS = (
    "bot is not a member", "not enough rights", "chat_admin_required", "need administrator rights",
    "bot was kicked", "chat not found", "have no rights", "not an administrator",
)

_unconfigured_logged = False


def client(settings: Settings) -> telebot.TeleBot:
    """The Bot API client, or an Ignore (logged once) when TELEGRAM_BOT_TOKEN is unset."""
    global _unconfigured_logged
    try:
        return client_for(settings)
    except NotConfigured:
        if not _unconfigured_logged:
            _unconfigured_logged = True
            log.warning("TELEGRAM_BOT_TOKEN is not set: chat invites, removals and reminders are skipped")
        raise inbox.Ignore("TELEGRAM_BOT_TOKEN is not set; nothing was sent") from None


def _retry_after(exc: ApiTelegramException) -> float | None:
    if exc.error_code != 429:
        return None
    parameters = (exc.result_json or {}).get("parameters") or {}
    value = parameters.get("retry_after")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1.0


def take_share(settings: Settings, action: str, calls: int, to_chat: int | None, caller: str) -> None:
    """Before a handler's Bot API calls: reserve their slot in the bot's budget (`calls` in all, one message to `to_chat`), or defer the event until it.

    Reserved at once for every call the handler makes, so a handler never stops half-way for want
    of budget; the event (`caller`) comes back at its slot, goes without a new reservation (once the
    calls actually made leave room in the second: see `app/telegram/budget.py`), and decides
    again from what holds then.
    """
    wait = budget.for_settings(settings).wait_for(caller, to_chat, calls)
    if wait:
        metrics.chat_access.labels(action=action, result="throttled").inc()
        raise inbox.Deferred(wait, f"the bot's Bot API budget has {action} in {wait:.2f} s")


def call(action: str, fn: Callable[..., T], *args, **kwargs) -> T:
    """Call the Bot API; other failures are raised, and a 429 waits its `retry_after` without holding a thread.

    Inside an inbox handler the event is deferred (`inbox.Deferred`): its message comes back
    after `retry_after` and the handler decides again from what holds then. Elsewhere (an
    operator's command) the call waits and tries again, a few times.
    """
    for attempt in range(1, RATE_LIMIT_TRIES + 1):
        try:
            return fn(*args, **kwargs)
        except ApiTelegramException as exc:
            wait = _retry_after(exc)
            if wait is None:
                raise
            metrics.chat_access.labels(action=action, result="retry").inc()
            if inbox.current_context() is not None:
                raise inbox.Deferred(wait, f"the Bot API asked to wait {wait:g} s before {action}") from None
            if wait > MAX_RETRY_AFTER or attempt == RATE_LIMIT_TRIES:
                raise
            log.info("Bot API asked to wait %ss before %s; waiting", wait, action)
            time.sleep(wait)
    raise AssertionError("unreachable")


def chat_problem(chat: int, exc: BaseException, event_id: int) -> Exception:
    """The inbox outcome of a failed chat call: a rights problem fails the row with what to fix, the rest retry."""
    if isinstance(exc, ApiTelegramException):
        text = describe_error(exc)
        if any(p in str(exc.description or "").lower() for p in _RIGHTS_PROBLEMS):
            return inbox.PermanentError(
                f"the bot cannot manage chat {chat}: {text}; add the bot to the chat as an administrator with the "
                f"'Invite users via link' and 'Ban users' rights, then run `entitle events replay {event_id}`"
            )
        if exc.error_code == 400:
            return inbox.PermanentError(f"chat {chat}: {text}")
        return RuntimeError(f"chat {chat}: {text}")
    if isinstance(exc, (ApiException, requests.RequestException)):
        return RuntimeError(f"chat {chat}: {describe_error(exc)}")
    return exc


def tell(bot: telebot.TeleBot, user_id: int, text: str, what: str = "access") -> bool:
    """Message a user; False when they blocked the bot or cannot be written to (never raised: it must not stop access changes)."""
    try:
        call("message", bot.send_message, user_id, text)
        timeline.note_message(user_id, text, what)
        return True
    except ApiTelegramException as exc:
        if exc.error_code in (400, 403):
            log.info("user %s not messaged: %s", user_id, describe_error(exc))
            return False
        raise


def invite_name(first_name: str | None, user_id: int) -> str:
    """The invite link's name: the user's first name and id, within the Bot API's 32 characters."""
    suffix = f" {user_id}"
    return ((first_name or "user")[: 32 - len(suffix)] + suffix).strip()


def create_invite(bot: telebot.TeleBot, chat: int, name: str) -> str:
    """A join-request invite link to `chat`, named after the user it is for."""
    link = call("invite", bot.create_chat_invite_link, chat, name=name, creates_join_request=True)
    return link.invite_link


def member_status(bot: telebot.TeleBot, chat: int, user_id: int) -> str:
    """The user's status in the chat (`creator`, `administrator`, `member`, `left`, …), read raw so any status parses."""
    result = call("remove", apihelper.get_chat_member, bot.token, chat, user_id)
    return str(result.get("status", ""))


def remove(bot: telebot.TeleBot, chat: int, user_id: int) -> None:
    """Remove a user from a chat so they can come back: ban, then unban only if banned."""
    call("remove", bot.ban_chat_member, chat, user_id)
    call("remove", bot.unban_chat_member, chat, user_id, only_if_banned=True)


def until_text(end: datetime | None) -> str:
    """An end for messages: `2030-01-31 12:00 UTC`."""
    return "never" if end is None else f"{iso(end)[:16].replace('T', ' ')} UTC"
