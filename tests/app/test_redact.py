"""Secrets inside error texts are hidden before they are stored or shown."""
from __future__ import annotations

from app.inbox import describe_error
from app.redact import redact


def test_bot_tokens_in_urls_and_bare_are_hidden():
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    text = redact(f"ConnectionError: https://api.telegram.org/bot{token}/sendMessage failed; token {token}")
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in text
    assert "/bot123456789:***/sendMessage" in text


def test_stripe_keys_and_webhook_secrets_are_hidden():
    text = redact("Invalid API Key provided: sk_test_51Habcdef and whsec_abcdef123 and rk_live_zzz")
    assert text == "Invalid API Key provided: sk_*** and whsec_*** and rk_***"


def test_stored_errors_are_redacted():
    error = describe_error(RuntimeError("GET /bot42424242:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/getMe"))
    assert error == "RuntimeError: GET /bot42424242:***/getMe"
