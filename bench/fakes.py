"""Telegram's Bot API and Stripe's API replaced at the wire, in a process of their own: `entitle sandbox`'s stand-ins.

`python -m bench.fakes` prints one JSON line with both base addresses (one port serves both) and
serves until stdin closes or it is terminated. Workers call them (sendMessage after a payment,
Stripe look-ups); the load generator tells it the Checkout Sessions it makes up (`bench.payloads`).
"""
from __future__ import annotations

import json
import signal
import sys
import threading

from bench.config import BOT_TOKEN, STRIPE_KEY


def main() -> None:
    """Serve the sandbox on a free loopback port until told to stop."""
    from simulate.sandbox import Sandbox

    sandbox = Sandbox(bot_token=BOT_TOKEN, stripe_secret_key=STRIPE_KEY).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"telegram": sandbox.url, "stripe": sandbox.url}), flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(5):
        # Forget what was recorded, so a long run does not grow without bound.
        sandbox.forget_calls()
    sandbox.stop()


if __name__ == "__main__":
    main()
