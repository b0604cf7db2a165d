"""One Bot API budget per bot, shared by every process and host through Redis: a GCRA schedule of the bot's calls.

Telegram's published limits (Bots FAQ, "My bot is hitting limits, how do I avoid this?"):
no more than one message per second to one chat, about 30 messages per second in bulk, and
20 a minute to one group. `BOT_API_RATE` (default 20, a third under the 30: a call reaches Telegram
some time after the budget lets it go, later under load, so calls let go a second apart can arrive
closer together) paces every call that
messages users or changes chat membership; `BOT_API_CHAT_RATE` (default 1) paces the messages
to one chat. Bulk work (chat access, reminders) reserves its calls' slot before calling: the
first in line goes at once, the rest are deferred exactly until their slot and, when they come
back, go without a new reservation, so a backlog waits its turn instead of asking again and again.
A deferred message comes back late, by however long its worker takes to notice it is due (up to
Dramatiq's `worker_timeout`), and by different amounts, so callers due a second apart could go
together: every call also passes a gate when it actually goes (no more than `BOT_API_RATE` calls
in any one second, no two messages to a chat closer than its pace), and one that finds the second
full waits until it has room, keeping its slot.
Replies to people and payment confirmations take a slot without ever waiting; answers Telegram
waits for (pre-checkout, join-request queries) are never counted here at all.

The schedule lives under `{BROKER_NAMESPACE}:bot-api` in the broker's Redis (one Lua script, so
every process and host shares it, timed by Redis's own clock); with an in-process broker
(`entitle run`) it is the process's own. When Redis cannot be reached the call goes ahead:
Telegram's own 429 still stops a flood.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from app.config import Settings

log = logging.getLogger(__name__)

# KEYS: the bot's next free time, this caller's reservation, the chat's next free time (or ""),
#       the times of the bot's last calls that went (newest first), when the chat may be messaged again (or "").
# ARGV: the caller's calls in ms of schedule, one message's ms for the chat, whether to wait (1) or only count (0),
#       the caller's calls, the bot's calls a second.
# The first three keys are the schedule of reservations; the last two are the gate a call passes when it
# actually goes: no more than the rate in any second, no two messages to a chat closer than the chat's pace.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = 3600000
local calls, rate = tonumber(ARGV[4]), tonumber(ARGV[5])
local function num(key) return tonumber(redis.call('GET', key) or '0') end
local function free_at()
  local at = now
  if KEYS[5] ~= '' then at = math.max(at, num(KEYS[5])) end
  local last = redis.call('LINDEX', KEYS[4], rate - math.min(calls, rate))
  if last then at = math.max(at, tonumber(last) + 1000) end
  return at
end
local function went()
  for _ = 1, calls do redis.call('LPUSH', KEYS[4], tostring(now)) end
  redis.call('LTRIM', KEYS[4], 0, rate - 1)
  redis.call('PEXPIRE', KEYS[4], 1000)
  if KEYS[5] ~= '' then
    local at = math.max(num(KEYS[5]), now) + tonumber(ARGV[2])
    redis.call('SET', KEYS[5], tostring(at), 'PX', math.ceil(at - now) + 1000)
  end
end
local held = redis.call('GET', KEYS[2])
if held then
  held = math.max(tonumber(held), free_at())
  if held > now then return math.ceil(held - now) end
  redis.call('DEL', KEYS[2])
  went()
  return 0
end
local slot = math.max(now, num(KEYS[1]))
if KEYS[3] ~= '' then slot = math.max(slot, num(KEYS[3])) end
if ARGV[3] == '0' then slot = now end
redis.call('SET', KEYS[1], tostring(math.max(num(KEYS[1]), slot) + tonumber(ARGV[1])), 'PX', keep)
if KEYS[3] ~= '' then
  redis.call('SET', KEYS[3], tostring(math.max(num(KEYS[3]), slot) + tonumber(ARGV[2])), 'PX', keep)
end
if ARGV[3] == '0' then went() return 0 end
if slot <= now then slot = free_at() end
if slot <= now then went() return 0 end
redis.call('SET', KEYS[2], tostring(slot), 'PX', math.ceil(slot - now) + keep)
return math.ceil(slot - now)
"""


@dataclass(frozen=True)
class _Key:
    url: str | None
    namespace: str
    token_id: str
    rate: int
    chat_rate: int


class Budget:
    """The schedule of one bot's calls: every bulk call, and the messages to each chat."""

    def __init__(self, key: _Key, timeout: float = 2.0):
        self._prefix = f"{key.namespace}:bot-api:{key.token_id}"
        self._rate = key.rate
        self._call_ms = 1000.0 / key.rate
        self._message_ms = 1000.0 / key.chat_rate
        self._client = None
        if key.url and key.url.startswith(("redis://", "rediss://")):
            self._client = redis.Redis.from_url(key.url, socket_timeout=timeout, socket_connect_timeout=timeout)
            self._script = self._client.register_script(_RESERVE)
        self._local: dict[str, float] = {}
        self._went: list[float] = []  # the times of the last calls that went, newest first (the script's list)
        self._lock = threading.Lock()
        self._failing_logged = False

    def wait_for(self, caller: str, chat: int | None, calls: int = 1) -> float:
        """Reserve the slot of `caller`'s `calls` (one a message to `chat`; None: none); 0 to go now, else the seconds until its slot.

        A caller that comes back at its slot keeps it: it goes as soon as the calls actually made before it
        leave room (at once, unless callers that came back late went just now), without a new reservation.
        """
        return self._reserve(caller, chat, calls, wait=True)

    def count(self, chat: int | None) -> None:
        """Take a slot for a call that never waits (a reply to a person), so bulk work leaves room for it."""
        self._reserve("", chat, 1, wait=False)

    def _reserve(self, caller: str, chat: int | None, calls: int, *, wait: bool) -> float:
        keys = [
            f"{self._prefix}:next", f"{self._prefix}:held:{caller}", f"{self._prefix}:chat:{chat}" if chat is not None else "",
            f"{self._prefix}:went", f"{self._prefix}:went:chat:{chat}" if chat is not None else "",
        ]
        args = [self._call_ms * calls, self._message_ms, 1 if wait else 0, calls, self._rate]
        if self._client is None:
            return self._reserve_here(keys, args) / 1000
        try:
            return int(self._script(keys=keys, args=args)) / 1000
        except Exception as exc:  # Redis down or frozen: the call goes ahead
            if not self._failing_logged:
                self._failing_logged = True
                log.warning("the Bot API budget cannot be read (%s); calls go ahead unthrottled", type(exc).__name__)
            return 0.0

    def _reserve_here(self, keys: list[str], args: list) -> float:
        """The script's schedule and gate in this process, for an in-process broker (milliseconds, as the script returns)."""
        nxt, held_key, chat_key, _bot_went, went_chat_key = keys
        cost, message, wait, calls, rate = args
        local, recent = self._local, self._went
        with self._lock:
            now = time.monotonic() * 1000

            def free_at() -> float:
                at = max(now, local.get(went_chat_key, 0.0) if went_chat_key else 0.0)
                index = rate - min(calls, rate)
                return max(at, recent[index] + 1000) if index < len(recent) else at

            def went() -> None:
                recent[:0] = [now] * calls
                del recent[rate:]
                if went_chat_key:
                    local[went_chat_key] = max(local.get(went_chat_key, 0.0), now) + message

            held = local.get(held_key)
            if held is not None:
                held = max(held, free_at())
                if held > now:
                    return held - now
                del local[held_key]
                went()
                return 0.0
            slot = max(now, local.get(nxt, 0.0), local.get(chat_key, 0.0) if chat_key else 0.0) if wait else now
            local[nxt] = max(local.get(nxt, 0.0), slot) + cost
            if chat_key:
                local[chat_key] = max(local.get(chat_key, 0.0), slot) + message
            if not wait:
                went()
                return 0.0
            if slot <= now:
                slot = free_at()
            if slot <= now:
                went()
                return 0.0
            local[held_key] = slot
            return slot - now


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
