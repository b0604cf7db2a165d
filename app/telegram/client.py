"""The Bot API client for the settings: pyTelegramBotAPI's sync TeleBot, pointed at a configurable Bot API server.

pyTelegramBotAPI builds every request URL in one place, `apihelper._make_request`, as
`apihelper.API_URL.format(token, method_name)`; the template is a module global, so a plain
string there would send every bot in the process to the same server. Instead we install, once,
a template object whose `format()` reads the server from the token itself: `make_bot` hands
TeleBot a `str` subclass that carries its own `api_url`. Two bots made with different URLs
therefore never leak into each other, and a bot built elsewhere with a plain-string token still
goes to https://api.telegram.org exactly as pyTelegramBotAPI would send it.

The sync client sends every parameter in the query string (even for POST); lists and objects
(`prices`, `reply_markup`, `allowed_updates`) are JSON strings and booleans are Python's
`True`/`False`.
"""
from __future__ import annotations

import re

import requests
import telebot
from telebot import apihelper

from app.config import Settings
from app.redact import redact

DEFAULT_API_URL = "https://api.telegram.org"

__all__ = ["DEFAULT_API_URL", "NotConfigured", "bot_username", "client_for", "describe_error", "make_bot", "mask_tokens"]


class NotConfigured(Exception):
    """TELEGRAM_BOT_TOKEN is not set, so the Bot API cannot be called."""


def client_for(settings: Settings) -> telebot.TeleBot:
    """The Bot API client for these settings."""
    if not settings.telegram_bot_token:
        raise NotConfigured("TELEGRAM_BOT_TOKEN is not set")
    return make_bot(settings.telegram_bot_token, settings.telegram_api_url)


class _BotToken(str):
    """A bot token that also knows which Bot API server it belongs to."""

    api_url: str

    def __new__(cls, token: str, api_url: str) -> "_BotToken":
        self = super().__new__(cls, token)
        self.api_url = api_url
        return self

    def __getnewargs__(self) -> tuple[str, str]:
        return str(self), self.api_url

    def __repr__(self) -> str:
        return repr(f"{self.partition(':')[0]}:***")


class _PerTokenURL:
    """Stands in for apihelper's URL template and formats it with the token's own server."""

    def __init__(self, path: str) -> None:
        self.path = path

    def format(self, token: str, name: str) -> str:
        base = getattr(token, "api_url", DEFAULT_API_URL)
        return base + self.path.format(token, name)

    def __repr__(self) -> str:
        return f"<per-bot Bot API URL {{api_url}}{self.path}>"


_API_URL = _PerTokenURL("/bot{0}/{1}")
_FILE_URL = _PerTokenURL("/file/bot{0}/{1}")


def _install_url_templates() -> None:
    # The only global state we touch: two template objects, the same for every bot.
    if apihelper.API_URL is not _API_URL:
        apihelper.API_URL = _API_URL
    if apihelper.FILE_URL is not _FILE_URL:
        apihelper.FILE_URL = _FILE_URL


def make_bot(token: str, api_url: str = DEFAULT_API_URL) -> telebot.TeleBot:
    """A TeleBot whose requests go to `{api_url}/bot{token}/{method}`."""
    if not token:
        raise ValueError("a bot token is required")
    base = (api_url or DEFAULT_API_URL).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError("the Bot API URL must start with http:// or https://")
    _install_url_templates()
    # threaded=False: we only call the API; a threaded TeleBot starts two worker threads per instance.
    return telebot.TeleBot(_BotToken(token, base), threaded=False)


_usernames: dict[tuple[str, str], str] = {}


def bot_username(bot: telebot.TeleBot) -> str:
    """The bot's @username (getMe, asked once per process and bot)."""
    key = (str(bot.token), getattr(bot.token, "api_url", DEFAULT_API_URL))
    if key not in _usernames:
        _usernames[key] = bot.get_me().username
    return _usernames[key]


_CATEGORY = re.compile(r"^[A-Z][A-Za-z ]+: ")


def mask_tokens(text: str) -> str:
    """Replace the secret half of every bot token in `text` (in URLs or bare) with `***`."""
    return redact(text)


def describe_error(exc: BaseException) -> str:
    """A short message for a failed Bot API call, e.g. `CHARGE_ALREADY_REFUNDED (400)`; never the token."""
    if isinstance(exc, apihelper.ApiTelegramException):
        # "Bad Request: CHARGE_ALREADY_REFUNDED" -> "CHARGE_ALREADY_REFUNDED"; the code says the category.
        description = _CATEGORY.sub("", str(exc.description or "").strip()) or "error"
        return mask_tokens(f"{description} ({exc.error_code})")
    if isinstance(exc, apihelper.ApiHTTPException):
        return f"{exc.function_name}: HTTP {exc.result.status_code} {exc.result.reason or ''}".rstrip()
    if isinstance(exc, apihelper.ApiInvalidJSONException):
        return f"{exc.function_name}: the Bot API answered with invalid JSON (HTTP {exc.result.status_code})"
    if isinstance(exc, requests.Timeout):
        return f"the Bot API did not answer in time ({type(exc).__name__})"
    if isinstance(exc, requests.ConnectionError):
        return f"the Bot API cannot be reached ({type(exc).__name__})"
    return mask_tokens(str(exc)) or type(exc).__name__
