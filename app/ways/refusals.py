"""Why a trial, a code or a gift was refused: a code for the API and the logs, and plain words for the payer."""
from __future__ import annotations


class Refused(Exception):
    """A way in was refused; `reason` is stable (API error codes, metrics), `message` is what the payer reads."""

    status = 409

    def __init__(self, reason: str, message: str, status: int | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        if status is not None:
            self.status = status


def plan_named(catalogue, key: str):
    """The plan a payer named (any case, spaces around), or None; only ASCII is read, so `premium_weeK` (Kelvin sign) names nothing."""
    key = key.strip()
    return catalogue.get(key.lower()) if key.isascii() else None


def unknown_plan(key: str) -> Refused:
    """No plan has this name: said with the name cut short, so the answer stays within a Telegram message."""
    shown = key if len(key) <= 40 else key[:40] + "…"
    return Refused("unknown_plan", f"There is no plan called {shown!r}.", 400)
