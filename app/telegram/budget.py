"""One Bot API budget per bot, shared by every process and host through Redis (the `limits` library's moving windows).

Telegram's published limits (Bots FAQ, "My bot is hitting limits, how do I avoid this?"):
no more than one message per second to one chat, about 30 messages per second in bulk, and
20 a minute to one group. `BOT_API_RATE` (default 25, under the 30) counts every call that
messages users or changes chat membership; `BOT_API_CHAT_RATE` (default 1) counts the
messages to one chat. Bulk work (chat access, reminders) takes its share before it calls and
is deferred when there is none; replies to people and payment confirmations are counted
without ever waiting, and answers Telegram waits for (pre-checkout, join-request queries)
are never counted here at all.

The budget lives under `{BROKER_NAMESPACE}:bot-api` in the broker's Redis, so web and worker
processes on any host share it; with an in-process broker (`entitle run`) it is the process's
own. When Redis cannot be reached the call goes ahead: Telegram's own 429 still stops a flood.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from app.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Key:
    url: str | None
    namespace: str
    token_id: str
    rate: int
    chat_rate: int


class Budget:
    """The rate windows of one bot: every bulk call, and the messages to each chat."""

    def __init__(self, key: _Key, timeout: float = 2.0):
        from limits import RateLimitItemPerSecond, storage, strategies  # imported by the first process that sends

        if key.url and key.url.startswith(("redis://", "rediss://")):
            backend = storage.RedisStorage(
                key.url, key_prefix=f"{key.namespace}:bot-api", socket_timeout=timeout, socket_connect_timeout=timeout,
            )
        else:
            backend = storage.MemoryStorage()
        self._limiter = strategies.MovingWindowRateLimiter(backend)
        self._all = RateLimitItemPerSecond(key.rate)
        self._chat = RateLimitItemPerSecond(key.chat_rate)
        self._bot = key.token_id
        self._failing_logged = False

    def wait_for(self, chat: int | None, calls: int = 1) -> float:
        """Take the share of `calls` bulk calls, one of them a message to `chat` (None: no message); 0, or the seconds to wait."""
        try:
            # A handler's calls are taken together; never more than a whole second's budget, or they could never pass.
            if not self._limiter.hit(self._all, self._bot, cost=min(calls, self._all.amount)):
                return self._reset_in(self._all, self._bot)
            if chat is not None and not self._limiter.hit(self._chat, self._bot, str(chat)):
                return self._reset_in(self._chat, self._bot, str(chat))
            return 0.0
        except Exception as exc:  # Redis down or frozen: the call goes ahead
            self._unreachable(exc)
            return 0.0

    def count(self, chat: int | None) -> None:
        """Count a call that never waits (a reply to a person), so bulk work leaves room for it."""
        try:
            self._limiter.hit(self._all, self._bot)
            if chat is not None:
                self._limiter.hit(self._chat, self._bot, str(chat))
        except Exception as exc:
            self._unreachable(exc)

    def _reset_in(self, item, *identifiers: str) -> float:
        stats = self._limiter.get_window_stats(item, *identifiers)
        return max(0.05, stats.reset_time - time.time())

    def _unreachable(self, exc: Exception) -> None:
        if not self._failing_logged:
            self._failing_logged = True
            log.warning("the Bot API budget cannot be read (%s); calls go ahead unthrottled", type(exc).__name__)


_budgets: dict[_Key, Budget] = {}
_lock = threading.Lock()


def for_settings(settings: Settings) -> Budget:
    """The bot's budget for these settings (one per process and configuration)."""
    token_id = (settings.telegram_bot_token or "").split(":", 1)[0]
    key = _Key(settings.broker_url, settings.broker_namespace, token_id, settings.bot_api_rate, settings.bot_api_chat_rate)
    with _lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = Budget(key, settings.broker_timeout)
        return budget
