"""How many wrong promo codes a payer may try: `MAX_WRONG` an hour, counted in Redis (no database write per try).

Without a Redis (the embedded development mode) the count is kept in this process.
"""
from __future__ import annotations

import logging
import threading
import time

import redis

log = logging.getLogger(__name__)

MAX_WRONG = 10
WINDOW_SECONDS = 3600


class GuessLimit:
    """Counts a payer's wrong codes in fixed one-hour windows; `blocked` once they reached `MAX_WRONG`."""

    def __init__(self, redis_url: str | None, *, max_wrong: int = MAX_WRONG, window: int = WINDOW_SECONDS, namespace: str = "entitle"):
        self.max_wrong = max_wrong
        self.window = window
        self.namespace = namespace
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1) if redis_url else None
        self._local: dict[str, int] = {}
        self._lock = threading.Lock()

    def _key(self, telegram_id: int) -> str:
        return f"{self.namespace}:promo-wrong:{telegram_id}:{int(time.time()) // self.window}"

    def blocked(self, telegram_id: int) -> bool:
        """True when the payer tried `max_wrong` wrong codes in this window."""
        key = self._key(telegram_id)
        if self._redis is not None:
            try:
                return int(self._redis.get(key) or 0) >= self.max_wrong
            except redis.RedisError as exc:
                log.warning("wrong-code count unavailable (%s); counting in this process", type(exc).__name__)
        with self._lock:
            return self._local.get(key, 0) >= self.max_wrong

    def wrong(self, telegram_id: int) -> None:
        """Count one wrong code."""
        key = self._key(telegram_id)
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline()
                pipe.incr(key)
                pipe.expire(key, self.window)
                pipe.execute()
                return
            except redis.RedisError as exc:
                log.warning("wrong-code count unavailable (%s); counting in this process", type(exc).__name__)
        with self._lock:
            self._local[key] = self._local.get(key, 0) + 1


_limits: dict[tuple[str | None, str], GuessLimit] = {}


def limit_for(redis_url: str | None, namespace: str = "entitle") -> GuessLimit:
    """The process's limiter for this Redis (one connection pool per URL)."""
    key = (redis_url, namespace)
    if key not in _limits:
        _limits[key] = GuessLimit(redis_url, namespace=namespace)
    return _limits[key]
