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
