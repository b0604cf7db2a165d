"""Stripe: the API client, Checkout, subscriptions, refunds and the inbox handler table.

The same skeleton as `app/telegram/`: `SOURCE` here, `client.py` (the API client for the
settings and how its errors read), `handlers.py` (the inbox table), `refunds.py`
(`refund_payment`, `UnknownPayment`, `RefundResult`).
"""

SOURCE = "stripe"
"""The provider name of inbox rows, and the source of grants paid by card."""


class NothingToDo(Exception):
    """The Stripe object needs no grant or revocation here (not ours, not paid, not a subscription's)."""


class CannotFulfil(Exception):
    """A payment cannot be turned into a grant until an operator acts (an unknown plan or price)."""
