"""The shape of the Telegram updates this service acts on, checked at the door before anything is recorded.

Only what the webhook and the handlers read is checked: an update's id, a pre-checkout query, and a
message with its sender, chat, text, payment or refund. Telegram leaves an optional field out rather
than sending null, so a field that is present must have its documented type. Other update kinds
(edited messages, channel posts, …) pass untouched; the webhook ignores them.
"""
from __future__ import annotations

from typing import Any

from app import text
from app.telegram.payments import MAX_PAYLOAD_BYTES

MAX_ID = 2**53  # Telegram ids fit in 53 bits ("a 64-bit integer or double-precision float type are safe")
MAX_TIMESTAMP = 2**32  # Unix time in Telegram's 32-bit range (until 2106)
MAX_CHARGE_ID = 200
MAX_SHORT_TEXT = 256
UNSTORABLE = "text without NUL characters or lone surrogates"


class MalformedUpdate(ValueError):
    """A field of an update is missing, of the wrong type or out of range; the message names the field."""

    def __init__(self, field: str, expected: str):
        super().__init__(f"{field} must be {expected}")
        self.field = field


_MISSING = object()


def _field(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _get(obj: dict, key: str, path: str, required: bool) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING and required:
        raise MalformedUpdate(_field(path, key), "present")
    return value


def _object(obj: dict, key: str, path: str = "", *, required: bool = False) -> dict | None:
    value = _get(obj, key, path, required)
    if value is _MISSING:
        return None
    if not isinstance(value, dict):
        raise MalformedUpdate(_field(path, key), "an object")
    return value


def _integer(obj: dict, key: str, path: str, *, low: int, high: int, required: bool = False, what: str | None = None) -> None:
    value = _get(obj, key, path, required)
    if value is _MISSING:
        return
    # bool is an int subclass in Python, but `true` is not a number on the wire.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < high:
        raise MalformedUpdate(_field(path, key), what or f"an integer from {low} to {high - 1}")


def _string(
    obj: dict, key: str, path: str, *, max_len: int, required: bool = False, non_empty: bool = False, acted_on: bool = True
) -> None:
    """A string field; one the service acts on (ids, currencies, payloads) must also be storable as it is."""
    value = _get(obj, key, path, required)
    if value is _MISSING:
        return
    if not isinstance(value, str) or len(value) > max_len or (non_empty and not value):
        size = f"of 1 to {max_len} characters" if non_empty else f"of at most {max_len} characters"
        raise MalformedUpdate(_field(path, key), f"a string {size}")
    if acted_on and not text.storable(value):
        raise MalformedUpdate(_field(path, key), UNSTORABLE)


def _payload(obj: dict, path: str, *, required: bool) -> None:
    value = _get(obj, "invoice_payload", path, required)
    if value is _MISSING:
        return
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
        raise MalformedUpdate(f"{path}.invoice_payload", f"a string of at most {MAX_PAYLOAD_BYTES} bytes")
    if not text.storable(value):
        raise MalformedUpdate(f"{path}.invoice_payload", UNSTORABLE)


def _boolean(obj: dict, key: str, path: str) -> None:
    value = obj.get(key, _MISSING)
    if value is not _MISSING and not isinstance(value, bool):
        raise MalformedUpdate(_field(path, key), "true or false")


def _user(obj: dict, key: str, path: str, *, required: bool) -> None:
    user = _object(obj, key, path, required=required)
    if user is None:
        return
    where = _field(path, key)
    _integer(user, "id", where, low=1, high=MAX_ID, required=True,
             what="a Telegram user id: a positive integer below 2^53")
    _boolean(user, "is_bot", where)
    _boolean(user, "is_premium", where)
    for name in ("first_name", "last_name"):
        _string(user, name, where, max_len=MAX_SHORT_TEXT, acted_on=False)
    _string(user, "username", where, max_len=64, acted_on=False)
    _string(user, "language_code", where, max_len=16, acted_on=False)


def _amount(obj: dict, path: str) -> None:
    _string(obj, "currency", path, max_len=16, required=True, non_empty=True)
    _integer(obj, "total_amount", path, low=1, high=MAX_ID, required=True)


def _charge_ids(obj: dict, path: str) -> None:
    _string(obj, "telegram_payment_charge_id", path, max_len=MAX_CHARGE_ID, required=True, non_empty=True)
    _string(obj, "provider_payment_charge_id", path, max_len=MAX_SHORT_TEXT)


def _successful_payment(message: dict) -> None:
    payment = _object(message, "successful_payment", "message")
    if payment is None:
        return
    where = "message.successful_payment"
    _amount(payment, where)
    _payload(payment, where, required=True)
    _charge_ids(payment, where)
    _integer(payment, "subscription_expiration_date", where, low=0, high=MAX_TIMESTAMP,
             what="a Unix time (an integer)")
    _boolean(payment, "is_recurring", where)
    _boolean(payment, "is_first_recurring", where)


def _refunded_payment(message: dict) -> None:
    refund = _object(message, "refunded_payment", "message")
    if refund is None:
        return
    where = "message.refunded_payment"
    _amount(refund, where)
    _payload(refund, where, required=False)
    _charge_ids(refund, where)


def _message(update: dict) -> None:
    message = _object(update, "message")
    if message is None:
        return
    _integer(message, "message_id", "message", low=0, high=MAX_ID, required=True)
    _integer(message, "date", "message", low=0, high=MAX_TIMESTAMP, required=True, what="a Unix time (an integer)")
    chat = _object(message, "chat", "message", required=True)
    _integer(chat, "id", "message.chat", low=1 - MAX_ID, high=MAX_ID, required=True, what="a Telegram chat id")
    _string(chat, "type", "message.chat", max_len=32, required=True, non_empty=True)
    _string(message, "text", "message", max_len=2**20, acted_on=False)
    acted_on = "successful_payment" in message or "refunded_payment" in message or chat["type"] == "private"
    _user(message, "from", "message", required=acted_on)
    _successful_payment(message)
    _refunded_payment(message)


def _pre_checkout_query(update: dict) -> None:
    query = _object(update, "pre_checkout_query")
    if query is None:
        return
    where = "pre_checkout_query"
    _string(query, "id", where, max_len=MAX_SHORT_TEXT, required=True, non_empty=True)
    _user(query, "from", where, required=True)
    _amount(query, where)
    _payload(query, where, required=True)


def _chat_join_request(update: dict) -> None:
    request = _object(update, "chat_join_request")
    if request is None:
        return
    where = "chat_join_request"
    chat = _object(request, "chat", where, required=True)
    _integer(chat, "id", f"{where}.chat", low=1 - MAX_ID, high=MAX_ID, required=True, what="a Telegram chat id")
    _user(request, "from", where, required=True)
    _integer(request, "user_chat_id", where, low=1, high=MAX_ID, what="a Telegram chat id")
    _integer(request, "date", where, low=0, high=MAX_TIMESTAMP, required=True, what="a Unix time (an integer)")
    _string(request, "query_id", where, max_len=128, non_empty=True)
    _string(chat, "title", f"{where}.chat", max_len=256)


SUBSCRIPTION_STATES = ("canceled", "active", "failed")


def _subscription(update: dict) -> None:
    change = _object(update, "subscription")
    if change is None:
        return
    where = "subscription"
    _user(change, "user", where, required=True)
    _payload(change, where, required=True)
    state = _get(change, "state", where, True)
    if not isinstance(state, str) or not state or len(state) > 32:
        raise MalformedUpdate(f"{where}.state", f"a string such as {', '.join(SUBSCRIPTION_STATES)}")


def _callback_query(update: dict) -> None:
    query = _object(update, "callback_query")
    if query is None:
        return
    where = "callback_query"
    _string(query, "id", where, max_len=MAX_SHORT_TEXT, required=True, non_empty=True)
    _user(query, "from", where, required=True)
    _string(query, "data", where, max_len=64)


def check_update(update: Any) -> None:
    """Raise MalformedUpdate, naming the field, unless the parts of `update` this service reads have Telegram's shapes."""
    if not isinstance(update, dict):
        raise MalformedUpdate("the body", "a JSON object")
    _integer(update, "update_id", "", low=0, high=MAX_ID, required=True)
    _pre_checkout_query(update)
    _message(update)
    _chat_join_request(update)
    _subscription(update)
    _callback_query(update)


def admit_update(update: Any) -> dict:
    """The update as the service stores it: checked (MalformedUpdate), then every other text cleaned so any database stores it.

    Fields the service acts on (ids, currencies, charge ids, invoice payloads) are refused when they
    hold a NUL or a lone surrogate; people's words (names, usernames, message text, chat titles and
    whatever else the service only keeps) lose their NULs and get U+FFFD for a lone surrogate.
    """
    check_update(update)
    return text.clean_all(update)


def subject_of(update: dict) -> int | None:
    """The Telegram user an update is about: the sender of its message, query or join request, the subscriber."""
    for key in ("message", "pre_checkout_query", "chat_join_request", "callback_query", "subscription"):
        part = update.get(key)
        sender = part.get("user" if key == "subscription" else "from") if isinstance(part, dict) else None
        user_id = sender.get("id") if isinstance(sender, dict) else None
        if isinstance(user_id, int) and not isinstance(user_id, bool) and 0 < user_id <= MAX_ID:
            return user_id
    return None
