"""Hide secrets that may turn up inside error texts: bot tokens, Stripe keys and webhook secrets."""
from __future__ import annotations

import re

_TOKEN_IN_URL = re.compile(r"(/bot)(\d+):[^/\s?#'\"]+")
_BARE_TOKEN = re.compile(r"\b(\d{5,}):[A-Za-z0-9_-]{30,}")
_STRIPE_KEY = re.compile(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9*]+|\bwhsec_[A-Za-z0-9*]+")


def redact(text: str) -> str:
    """`text` with the secret part of every bot token and Stripe key replaced by `***`."""
    text = _TOKEN_IN_URL.sub(r"\1\2:***", text)
    text = _BARE_TOKEN.sub(r"\1:***", text)
    return _STRIPE_KEY.sub(lambda m: m.group(0).split("_", 1)[0] + "_***", text)
