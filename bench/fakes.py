"""Telegram's Bot API and Stripe's API replaced at the wire, in a process of their own.

`python -m bench.fakes` prints one JSON line with both base addresses and serves until stdin
closes or it is terminated. Workers call them (sendMessage after a payment, Stripe look-ups).
"""
from __future__ import annotations

import json
import signal
import sys
import threading

from bench.config import STRIPE_KEY


def main() -> None:
    """Serve both fakes on free loopback ports until told to stop."""
    from simulate.stripe_api import FakeStripeAPI
    from simulate.telegram_api import FakeTelegramAPI

    telegram = FakeTelegramAPI().start()
    stripe_api = FakeStripeAPI(secret_key=STRIPE_KEY).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"telegram": telegram.url, "stripe": stripe_api.url}), flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(5):
        # Forget what was recorded, so a long run does not grow without bound.
        with telegram._lock:
            telegram._calls.clear()
        with stripe_api._lock:
            stripe_api.calls.clear()
    telegram.stop()
    stripe_api.stop()


if __name__ == "__main__":
    main()
