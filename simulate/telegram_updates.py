"""Realistic Bot API Update payloads, shaped as https://core.telegram.org/bots/api documents them.

Used by tests and by `entitle simulate telegram …`. Update and message ids increase within a
process and start at a random point, so two simulator runs against one service do not reuse ids.
"""
from __future__ import annotations

import itertools
import random
import secrets
import time
from typing import Any

__all__ = [
    "callback_query_update",
    "command_update",
    "new_charge_id",
    "pre_checkout_query_update",
    "refunded_payment_update",
    "subscription_update",
    "successful_payment_update",
]

_random = random.SystemRandom()
# Real update_ids fit in a signed 32-bit integer; keep well inside it.
_update_ids = itertools.count(_random.randrange(10**8, 2**31 - 10**8))
_message_ids = itertools.count(_random.randrange(1, 10**6))


def new_charge_id() -> str:
    """A fresh Telegram Stars `telegram_payment_charge_id` for simulated payments."""
    return "stx" + secrets.token_urlsafe(48).replace("-", "").replace("_", "")[:60]


def _user(user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": "Test",
        "last_name": f"User {user_id}",
        "username": f"user{user_id}",
        "language_code": "en",
    }


def _private_chat(user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "type": "private",
        "first_name": "Test",
        "last_name": f"User {user_id}",
        "username": f"user{user_id}",
    }


def _message_update(user_id: int, **content: Any) -> dict[str, Any]:
    return {
        "update_id": next(_update_ids),
        "message": {
            "message_id": next(_message_ids),
            "from": _user(user_id),
            "chat": _private_chat(user_id),
            "date": int(time.time()),
            **content,
        },
    }


def pre_checkout_query_update(
    user_id: int, payload: str, total_amount: int, currency: str = "XTR", query_id: str | None = None
) -> dict[str, Any]:
    """An Update with a `pre_checkout_query` for an invoice the user is about to pay."""
    return {
        "update_id": next(_update_ids),
        "pre_checkout_query": {
            "id": query_id or str(_random.randrange(10**18, 10**19)),
            "from": _user(user_id),
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
        },
    }


def successful_payment_update(
    user_id: int,
    payload: str,
    total_amount: int,
    charge_id: str,
    *,
    currency: str = "XTR",
    subscription_expiration_date: int | None = None,
    is_recurring: bool = False,
    is_first_recurring: bool = False,
) -> dict[str, Any]:
    """An Update whose message is the service message `successful_payment`."""
    payment: dict[str, Any] = {
        "currency": currency,
        "total_amount": total_amount,
        "invoice_payload": payload,
    }
    # Optional fields are absent, not false or null, when they do not apply (as Telegram sends them).
    if subscription_expiration_date is not None:
        payment["subscription_expiration_date"] = subscription_expiration_date
    if is_recurring or is_first_recurring:  # the first payment of a subscription is a recurring one too
        payment["is_recurring"] = True
    if is_first_recurring:
        payment["is_first_recurring"] = True
    payment["telegram_payment_charge_id"] = charge_id
    # Required by the docs; Stars payments have no payment provider, so it is empty.
    payment["provider_payment_charge_id"] = "" if currency == "XTR" else f"prov_{charge_id}"
    return _message_update(user_id, successful_payment=payment)


def refunded_payment_update(user_id: int, payload: str, total_amount: int, charge_id: str) -> dict[str, Any]:
    """An Update whose message is the service message `refunded_payment` (Bot API 7.10+; Stars only)."""
    refund = {
        "currency": "XTR",
        "total_amount": total_amount,
        "invoice_payload": payload,
        "telegram_payment_charge_id": charge_id,
    }
    return _message_update(user_id, refunded_payment=refund)


def command_update(user_id: int, text: str) -> dict[str, Any]:
    """An Update with a text message from the user, e.g. `/start` or `/status`, with its bot_command entity."""
    content: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        # Entity offsets and lengths count UTF-16 code units.
        length = len(command.encode("utf-16-le")) // 2
        content["entities"] = [{"offset": 0, "length": length, "type": "bot_command"}]
    return _message_update(user_id, **content)


def join_request_update(user_id: int, chat_id: int, *, query_id: str | None = None, title: str = "Paid chat") -> dict[str, Any]:
    """A `chat_join_request` update; with `query_id`, one a chat handed to the bot to decide (Bot API 10.1)."""
    request: dict[str, Any] = {
        "chat": {"id": chat_id, "type": "supergroup", "title": title},
        "from": _user(user_id),
        "user_chat_id": user_id,
        "date": int(time.time()),
    }
    if query_id is not None:
        request["query_id"] = query_id
    return {"update_id": next(_update_ids), "chat_join_request": request}


def subscription_update(user_id: int, payload: str, state: str) -> dict[str, Any]:
    """An Update with a `subscription` (BotSubscriptionUpdated): the user canceled (`canceled`), re-enabled (`active`)
    a Star subscription, or its renewal could not be charged (`failed`)."""
    return {
        "update_id": next(_update_ids),
        "subscription": {"user": _user(user_id), "invoice_payload": payload, "state": state},
    }


def callback_query_update(user_id: int, data: str) -> dict[str, Any]:
    """An Update with a `callback_query`: the user pressed an inline button (carrying `data`) under a bot's message."""
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": str(_random.randrange(10**18, 10**19)),
            "from": _user(user_id),
            "message": {
                "message_id": next(_message_ids),
                "from": {"id": 7000000001, "is_bot": True, "first_name": "entitle"},
                "chat": _private_chat(user_id),
                "date": int(time.time()),
                "text": "Which subscription?",
            },
            "chat_instance": str(_random.randrange(10**18, 10**19)),
            "data": data,
        },
    }
