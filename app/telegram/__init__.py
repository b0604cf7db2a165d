"""Telegram Stars: the Bot API client, payments, refunds, bot commands and the inbox handler table.

The same skeleton as `app/stripe/`: `SOURCE` here, `client.py` (the API client for the
settings and how its errors read), `handlers.py` (the inbox table), `refunds.py`
(`refund_payment`, `UnknownPayment`, `RefundResult`).
"""

SOURCE = "telegram"
"""The provider name of inbox rows, and the source of grants paid in Stars."""
