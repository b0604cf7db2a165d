"""Text from outside: what the database can store, what an id may look like, and how it is shown safely.

PostgreSQL refuses a NUL character in text and JSON, and a lone UTF-16 surrogate (`\\ud800`) cannot be
encoded as UTF-8 at all; SQLite stores both, but the row then behaves differently there. The doors
decide per field (see `unstorable`): values the service acts on are refused, names are cleaned.
"""
from __future__ import annotations

import re
import unicodedata

# `str.isdigit()` accepts `²`, `①`, Arabic-Indic and full-width digits; an id is ASCII digits only.
_ASCII_DIGITS = re.compile(r"[0-9]{1,32}\Z")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def ascii_int(raw: str) -> int | None:
    """`raw` as a non-negative integer when it is ASCII digits only (at most 32), else None."""
    return int(raw) if isinstance(raw, str) and _ASCII_DIGITS.match(raw) else None


def storable(value: str) -> bool:
    """True when both databases can store `value` as it is (no NUL, no lone surrogate)."""
    return _UNSTORABLE.search(value) is None


def cleaned(value: str) -> str:
    """`value` with NUL removed and each lone surrogate replaced by U+FFFD, so any database stores it."""
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else REPLACEMENT, value)


def unstorable(data, path: str = "") -> str | None:
    """The path (`message.from.first_name`) of the first key or string in JSON data that no database can store, or None."""
    if isinstance(data, str):
        return None if storable(data) else (path or "body")
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if not storable(str(key)):
                return where
            found = unstorable(value, where)
            if found is not None:
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found = unstorable(value, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def clean_all(data):
    """JSON data with every key and string `cleaned`."""
    if isinstance(data, str):
        return cleaned(data)
    if isinstance(data, dict):
        return {cleaned(str(key)): clean_all(value) for key, value in data.items()}
    if isinstance(data, list):
        return [clean_all(value) for value in data]
    return data


def visible(value) -> str:
    """Text for a terminal: control and format characters (ESC, NUL, newlines, bidi overrides) shown as `\\x1b`-style escapes."""
    text = value if isinstance(value, str) else str(value)
    return "".join(_shown(char) for char in text)


_JOINERS = "\u200c\u200d"  # format characters that emoji and scripts need, harmless on a terminal


def _shown(char: str) -> str:
    if char in _JOINERS or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
