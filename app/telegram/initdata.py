"""Telegram Mini App initData: parse, verify (bot token or Telegram's public key), explain, sign.

Algorithms: https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app
and "Validating data for Third-Party Use" on the same page (Bot API 8.0).
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import quote, unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DEFAULT_MAX_AGE = 900
# How far auth_date may lie ahead of our clock before we call it forged rather than skewed.
MAX_FUTURE_SKEW = 60

# Telegram's Ed25519 keys for third-party validation, by environment.
TELEGRAM_PUBLIC_KEYS: dict[str, str] = {
    "production": "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d",
    "test": "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec",
}

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

REASONS: dict[str, str] = {
    "malformed": "initData is not a well-formed query string",
    "hash_missing": "initData has no hash",
    "hash_mismatch": "initData hash does not match the bot token",
    "signature_missing": "initData has no signature",
    "signature_invalid": "initData signature is not Telegram's",
    "expired": "initData is too old",
    "auth_date_missing": "initData has no auth_date",
    "auth_date_invalid": "initData auth_date is not a Unix timestamp",
    "from_future": "initData auth_date lies in the future",
    "user_invalid": "initData user is not a JSON object with an integer id",
    "token_missing": "no bot token to check initData against",
}

# What usually causes each refusal, for the operator reading the log or `entitle initdata debug`.
LIKELY_CAUSES: dict[str, str] = {
    "malformed": "the page sent something other than Telegram.WebApp.initData, or it was cut or re-encoded on the way",
    "hash_missing": "the page sent initDataUnsafe or a hand-made string instead of Telegram.WebApp.initData",
    "hash_mismatch": "TELEGRAM_BOT_TOKEN is not the token of the bot that opened the app (or the token was revoked "
                     "in @BotFather), or the initData was changed",
    "expired": "the payer kept the app open longer than INITDATA_MAX_AGE; reopening it from the bot gives a fresh one",
    "auth_date_missing": "the initData was not made by Telegram",
    "auth_date_invalid": "the initData was not made by Telegram",
    "from_future": "this server's clock is behind (check NTP)",
    "user_invalid": "the initData was not made by Telegram",
    "signature_missing": "the initData is older than Bot API 8.0 or not made by Telegram",
    "signature_invalid": "--bot-id is not the id of the bot that opened the app, or the wrong --environment",
    "token_missing": "TELEGRAM_BOT_TOKEN is not set",
}


class InitDataError(Exception):
    """initData failed a check; `.reason` is a stable code, `.message` is for humans."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown initData reason {reason!r}")
        self.reason = reason
        self.message = message or REASONS[reason]
        super().__init__(self.message)


@dataclass(frozen=True)
class WebAppInitData:
    """initData that passed verification."""

    fields: dict[str, str]
    auth_date: int
    user: dict[str, Any] | None = None
    user_id: int | None = None
    query_id: str | None = None
    start_param: str | None = None
    chat_type: str | None = None
    chat_instance: str | None = None
    hash: str | None = None
    signature: str | None = None


@dataclass(frozen=True)
class Step:
    """One check of `explain`: ok is True, False, or None when skipped."""

    name: str
    ok: bool | None
    detail: str
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The step as JSON-safe data."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "reason": self.reason}


@dataclass(frozen=True)
class Explanation:
    """Every check run on one initData, in order."""

    valid: bool
    reason: str | None
    steps: tuple[Step, ...]
    fields: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The explanation as JSON-safe data."""
        return {
            "valid": self.valid,
            "reason": self.reason,
            "fields": dict(self.fields),
            "steps": [step.to_dict() for step in self.steps],
        }


def parse_init_data(raw: str) -> dict[str, str]:
    """Split raw initData into decoded fields, in the order given; raise `malformed` on anything odd."""
    return _parse(raw)[0]


def data_check_string(fields: Mapping[str, str]) -> str:
    """The string Telegram signs with the bot token: every field but `hash`, sorted, `key=value` per line."""
    return _join_sorted(fields, exclude=("hash",))


def expected_hash(fields: Mapping[str, str], bot_token: str) -> str:
    """The hex HMAC-SHA256 Telegram would have put in `hash` for these fields and this bot token."""
    return _hash_hex(data_check_string(fields), bot_token)


def third_party_check_string(fields: Mapping[str, str], bot_id: int) -> str:
    """The string Telegram signs with Ed25519: `<bot_id>:WebAppData` then every field but `hash` and `signature`."""
    return f"{bot_id}:WebAppData\n" + _join_sorted(fields, exclude=("hash", "signature"))


def verify_init_data(
    raw: str, bot_token: str, *, max_age: int = DEFAULT_MAX_AGE, now: float | None = None
) -> WebAppInitData:
    """Verify initData with the bot token (HMAC) and its age; return it parsed or raise InitDataError."""
    _check_max_age(max_age)
    if not bot_token:
        raise InitDataError("token_missing")
    fields, lines = _parse(raw)
    _check_hash(fields, bot_token, "\n".join([lines[key] for key in sorted(lines) if key != "hash"]))
    return _finish(fields, max_age=max_age, now=now)


def verify_third_party(
    raw: str,
    bot_id: int,
    *,
    environment: str = "production",
    max_age: int = DEFAULT_MAX_AGE,
    now: float | None = None,
    public_key: bytes | str | None = None,
) -> WebAppInitData:
    """Verify initData with Telegram's Ed25519 key for `bot_id` (no token needed); raise InitDataError."""
    _check_max_age(max_age)
    key = _public_key(environment, public_key)
    fields = parse_init_data(raw)
    _check_signature(fields, bot_id, key)
    return _finish(fields, max_age=max_age, now=now)


def explain(
    raw: str,
    *,
    bot_token: str | None = None,
    bot_id: int | None = None,
    environment: str = "production",
    max_age: int = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> Explanation:
    """Run every check on initData and record each one, for `entitle initdata debug`."""
    _check_max_age(max_age)
    key = _public_key(environment, None) if bot_id is not None else None
    steps: list[Step] = []

    try:
        fields = parse_init_data(raw)
    except InitDataError as exc:
        steps.append(Step("parse", False, exc.message, exc.reason))
        return Explanation(valid=False, reason=exc.reason, steps=tuple(steps))
    steps.append(Step("parse", True, f"{len(fields)} fields: {', '.join(fields)}"))
    steps.append(Step("data_check_string", True, data_check_string(fields)))

    steps.append(_hash_step(fields, bot_token, bot_id))

    if bot_id is not None:
        where = f"bot {bot_id}, Telegram's {environment} key"
        try:
            _check_signature(fields, bot_id, key)
            steps.append(Step("signature", True, f"Ed25519 signature valid ({where})"))
        except InitDataError as exc:
            steps.append(Step("signature", False, f"{exc.message} ({where})", exc.reason))
    else:
        steps.append(Step("signature", None, "skipped: no bot id given"))

    try:
        auth_date = _auth_date(fields)
    except InitDataError as exc:
        steps.append(Step("auth_date", False, exc.message, exc.reason))
    else:
        steps.append(Step("auth_date", True, f"{auth_date} ({_iso(auth_date)})"))
        if max_age == 0:
            steps.append(Step("age", None, "skipped: max_age is 0"))
        else:
            clock = time.time() if now is None else now
            detail = f"age {int(clock - auth_date)} s, max_age {max_age} s"
            try:
                _check_age(auth_date, max_age=max_age, now=clock)
                steps.append(Step("age", True, detail))
            except InitDataError as exc:
                steps.append(Step("age", False, f"{exc.message}: {detail}", exc.reason))

    if "user" in fields:
        try:
            user = _user(fields)
            steps.append(Step("user", True, f"id {user['id']}"))
        except InitDataError as exc:
            steps.append(Step("user", False, exc.message, exc.reason))
    else:
        steps.append(Step("user", None, "no user field"))

    failed = [step for step in steps if step.ok is False]
    authenticated = any(step.ok for step in steps if step.name in ("hash", "signature"))
    reason = failed[0].reason if failed else None
    return Explanation(valid=not failed and authenticated, reason=reason, steps=tuple(steps), fields=fields)


def _token_bot_id(bot_token: str) -> int | None:
    # A bot token is `<bot id>:<secret>`; a token without that shape may still be right, so it is tried.
    prefix, colon, _ = bot_token.partition(":")
    return int(prefix) if colon and prefix.isascii() and prefix.isdigit() else None


def _hash_step(fields: Mapping[str, str], bot_token: str | None, bot_id: int | None) -> Step:
    # Never show the computed hash: for changed fields it is a valid hash of them, a forgery.
    if not bot_token:
        if bot_id is None:
            return Step("hash", False, "give a bot token (or a bot id for the signature check)", "token_missing")
        return Step("hash", None, "skipped: no bot token given")
    token_owner = _token_bot_id(bot_token)
    if bot_id is not None and token_owner is not None and token_owner != bot_id:
        return Step(
            "hash",
            None,
            f"skipped: the bot token is bot {token_owner}'s, not bot {bot_id}'s, "
            f"so it cannot check a hash made for bot {bot_id}",
        )
    try:
        _check_hash(fields, bot_token)
    except InitDataError as exc:
        if exc.reason == "hash_missing":
            return Step("hash", False, exc.message, exc.reason)
        return Step(
            "hash",
            False,
            "the hash is not the HMAC-SHA256 of the data-check-string under this bot token: "
            "a field was changed after Telegram signed it, or another bot's token signed it",
            exc.reason,
        )
    return Step("hash", True, "the hash is the HMAC-SHA256 of the data-check-string under this bot token")


def sign_init_data(
    bot_token: str,
    *,
    user: dict[str, Any],
    auth_date: int | None = None,
    query_id: str | None = None,
    **extra: str,
) -> str:
    """Build a URL-encoded initData signed with `bot_token`, shaped like Telegram's, for development and tests."""
    if not bot_token:
        raise InitDataError("token_missing")
    if "hash" in extra:
        raise ValueError("hash is computed, not given")
    fields: dict[str, str] = {}
    if query_id is not None:
        fields["query_id"] = query_id
    fields["user"] = _telegram_json(user)
    for key, value in extra.items():
        if not isinstance(value, str):
            raise TypeError(f"initData field {key!r} must be a string")
        fields[key] = value
    fields["auth_date"] = str(int(time.time()) if auth_date is None else int(auth_date))
    for key, value in fields.items():
        if "\n" in value:
            raise ValueError(f"initData field {key!r} must not contain a line feed")
    fields["hash"] = expected_hash(fields, bot_token)
    return "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in fields.items())


def _parse(raw: str) -> tuple[dict[str, str], dict[str, str]]:
    # The fields, and each field's `key=value` line as it goes into the data-check-string.
    if not isinstance(raw, str) or not raw:
        raise InitDataError("malformed", "initData is empty")
    fields: dict[str, str] = {}
    lines: dict[str, str] = {}
    # Split before decoding so an encoded `&` or `=` inside a value stays part of it.
    for part in raw.split("&"):
        if "=" not in part:
            raise InitDataError("malformed", f"initData part without '=': {_clip(part)!r}")
        raw_key, _, raw_value = part.partition("=")
        if "%" in part or "+" in part:
            try:
                key = _unquote_plus(raw_key)
                value = _unquote_plus(raw_value)
            except UnicodeDecodeError:
                raise InitDataError("malformed", f"initData field {_clip(raw_key)!r} is not UTF-8") from None
            line = f"{key}={value}"
        else:
            key, value, line = raw_key, raw_value, part
        if not key or "=" in key or "\n" in key:
            raise InitDataError("malformed", f"initData has an invalid key {_clip(key)!r}")
        # A raw line feed would make two different field sets share one data-check-string.
        if "\n" in value:
            raise InitDataError("malformed", f"initData field {key!r} contains a line feed")
        if key in fields:
            raise InitDataError("malformed", f"initData repeats the field {key!r}")
        fields[key] = value
        lines[key] = line
    return fields, lines


def _unquote_plus(text: str) -> str:
    # Same result as unquote_plus(text, errors="strict"), with C codecs doing the common case: when the
    # text has no backslash of its own, unicode_escape turns each `\xHH` (from `%HH`) into U+00HH, whose
    # Latin-1 byte is 0xHH, and raises on a `%` without two hex digits, which unquote_plus keeps as is.
    if "%" not in text:
        return text.replace("+", " ")
    if text.isascii() and "\\" not in text:
        try:
            latin1 = text.replace("+", " ").replace("%", "\\x").encode().decode("unicode_escape")
        except UnicodeDecodeError:
            pass
        else:
            return latin1.encode("latin-1").decode()
    return unquote_plus(text, errors="strict")


@functools.lru_cache(maxsize=8)
def _secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def _join_sorted(fields: Mapping[str, str], *, exclude: tuple[str, ...]) -> str:
    return "\n".join([f"{key}={fields[key]}" for key in sorted(fields) if key not in exclude])


def _check_hash(fields: Mapping[str, str], bot_token: str, check_string: str | None = None) -> None:
    given = fields.get("hash")
    if not given:
        raise InitDataError("hash_missing")
    want = _hash_hex(data_check_string(fields) if check_string is None else check_string, bot_token)
    # Compare bytes: compare_digest refuses non-ASCII str, and a hostile hash may be anything (a lone surrogate too).
    if not hmac.compare_digest(want.encode(), given.encode("utf-8", "surrogatepass")):
        raise InitDataError("hash_mismatch")


def _hash_hex(check_string: str, bot_token: str) -> str:
    # A lone surrogate (never in Telegram's UTF-8) is hashed as its own bytes: it can only fail the comparison.
    return hmac.new(_secret_key(bot_token), check_string.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _check_signature(fields: Mapping[str, str], bot_id: int, key: Ed25519PublicKey) -> None:
    given = fields.get("signature")
    if not given:
        raise InitDataError("signature_missing")
    # Telegram sends base64url without padding; the stdlib decoder would silently skip stray characters.
    if not _BASE64URL.fullmatch(given):
        raise InitDataError("signature_invalid", "initData signature is not base64url")
    try:
        signature = base64.urlsafe_b64decode(given + "=" * (-len(given) % 4))
    except (binascii.Error, ValueError):
        raise InitDataError("signature_invalid", "initData signature is not base64url") from None
    try:
        key.verify(signature, third_party_check_string(fields, bot_id).encode("utf-8", "surrogatepass"))
    except InvalidSignature:
        raise InitDataError("signature_invalid") from None


def _public_key(environment: str, override: bytes | str | None) -> Ed25519PublicKey:
    if override is not None:
        raw = bytes.fromhex(override) if isinstance(override, str) else override
        return Ed25519PublicKey.from_public_bytes(raw)
    if environment not in TELEGRAM_PUBLIC_KEYS:
        raise ValueError(f"environment must be one of {', '.join(TELEGRAM_PUBLIC_KEYS)}, not {environment!r}")
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(TELEGRAM_PUBLIC_KEYS[environment]))


def _auth_date(fields: Mapping[str, str]) -> int:
    value = fields.get("auth_date")
    if value is None:
        raise InitDataError("auth_date_missing")
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise InitDataError("auth_date_invalid", f"initData auth_date {_clip(value)!r} is not a Unix timestamp")
    return int(value)


def _check_age(auth_date: int, *, max_age: int, now: float) -> None:
    if auth_date > now + MAX_FUTURE_SKEW:
        raise InitDataError("from_future")
    if now - auth_date > max_age:
        raise InitDataError("expired")


def _user(fields: Mapping[str, str]) -> dict[str, Any] | None:
    raw = fields.get("user")
    if raw is None:
        return None
    try:
        user = json.loads(raw)
    except ValueError:
        raise InitDataError("user_invalid", "initData user is not JSON") from None
    # Telegram ids fit in 52 bits; anything outside a signed 64-bit column is not one.
    if not isinstance(user, dict) or type(user.get("id")) is not int or not 0 < user["id"] < 2**63:
        raise InitDataError("user_invalid")
    return user


def _check_max_age(max_age: int) -> None:
    if max_age < 0:
        raise ValueError("max_age must be 0 (no age check) or positive")


def _finish(fields: dict[str, str], *, max_age: int, now: float | None) -> WebAppInitData:
    auth_date = _auth_date(fields)
    # max_age=0 turns the whole age check off: without expiry, a future auth_date buys nothing.
    if max_age:
        _check_age(auth_date, max_age=max_age, now=time.time() if now is None else now)
    user = _user(fields)
    return WebAppInitData(
        fields=fields,
        auth_date=auth_date,
        user=user,
        user_id=user["id"] if user else None,
        query_id=fields.get("query_id"),
        start_param=fields.get("start_param"),
        chat_type=fields.get("chat_type"),
        chat_instance=fields.get("chat_instance"),
        hash=fields.get("hash"),
        signature=fields.get("signature"),
    )


def _telegram_json(value: Any) -> str:
    # Telegram's clients send compact JSON, UTF-8 unescaped, with `/` escaped as `\/`;
    # `/` can only occur inside JSON strings, so the replace is safe.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/")


def _iso(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "out of range"


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
