"""What a plan costs by card: its Stripe Price, read once and kept, and the amount in the payer's language.

A Price's amount and currency never change at Stripe (a new price is a new Price), so each one is
read once per process and kept. A failed read is tried again only after `RETRY_AFTER` seconds, so
a Stripe outage or a mistyped price id costs the plan list one short request now and then, never a
wait on every page load; meanwhile the plan has no card price and the page says only "Pay by card".
"""
from __future__ import annotations

import functools
import logging
import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

import stripe
from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency

from app.config import Settings
from app.stripe.client import describe_error, make_client, plain

__all__ = ["CardPrice", "DEFAULT_LANGUAGE", "card_price", "language_tag_valid", "minor_units", "operator_amount"]

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"
RETRY_AFTER = 60.0
# The plan list waits on these reads, so they get less time than a checkout does.
TIMEOUT = 5.0
MAX_NETWORK_RETRIES = 1

# https://docs.stripe.com/currencies#minor-units: amounts are in the currency's minor unit, except
# these, counted in whole units (zero-decimal) or in thousandths (three-decimal).
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

# A BCP 47 language tag as Telegram's `language_code` and browsers' Accept-Language give it ("en", "pt-br").
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,3}$")


def minor_units(currency: str) -> int:
    """How many decimal places Stripe's integer amounts carry in this currency."""
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def operator_amount(amount: int, currency: str) -> str:
    """A Stripe amount (minor units) as the CLI shows it, in the currency's major unit: `4.99 EUR`, `500 JPY`, `1.250 KWD`."""
    places = minor_units(currency)
    return f"{Decimal(amount).scaleb(-places):.{places}f} {currency.upper()}"


def language_tag_valid(tag: str) -> bool:
    """True for a well-formed language tag such as `en`, `de` or `pt-br`."""
    return bool(_LANGUAGE_TAG.match(tag))


@functools.lru_cache(maxsize=64)
def _locale(tag: str) -> Locale:
    """The Babel locale of a language tag; English for a language Babel does not know."""
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        try:
            return Locale.parse(tag.split("-")[0].split("_")[0])
        except (ValueError, UnknownLocaleError):
            return Locale.parse(DEFAULT_LANGUAGE)


@dataclass(frozen=True)
class CardPrice:
    """A Stripe Price as a payer sees it: an amount in minor units, a currency, and how often it recurs."""

    price_id: str
    amount: int
    currency: str
    interval: str | None = None
    interval_count: int = 1

    @property
    def value(self) -> Decimal:
        """The amount in the currency's major unit (499 usd → 4.99)."""
        return Decimal(self.amount).scaleb(-minor_units(self.currency))

    def formatted(self, language: str = DEFAULT_LANGUAGE) -> str:
        """The amount written for a payer who speaks `language` ("$4.99" in English, "4,99 $" in German)."""
        return format_currency(self.value, self.currency.upper(), locale=_locale(language))

    def to_dict(self, language: str = DEFAULT_LANGUAGE) -> dict:
        """The price as JSON for the Mini App."""
        return {
            "amount": self.amount,
            "currency": self.currency,
            "formatted": self.formatted(language),
            "interval": self.interval,
            "interval_count": self.interval_count,
        }

    @classmethod
    def from_stripe(cls, price: dict) -> "CardPrice | None":
        """The card price of a Stripe Price object, or None when it has no fixed amount (tiered, customer-chosen)."""
        amount = price.get("unit_amount")
        currency = price.get("currency")
        if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str) or not currency:
            return None
        recurring = price.get("recurring") or {}
        return cls(
            price_id=str(price.get("id")),
            amount=amount,
            currency=currency.lower(),
            interval=recurring.get("interval"),
            interval_count=int(recurring.get("interval_count") or 1),
        )


class _Prices:
    """The prices this process has read, by (key, API base, price id), and when each failed read may be tried again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple, CardPrice | None] = {}
        self._retry_at: dict[tuple, float] = {}

    def get(self, settings: Settings, price_id: str) -> CardPrice | None:
        key = (settings.stripe_secret_key, settings.stripe_api_base, price_id)
        with self._lock:
            if key in self._known:
                return self._known[key]
            if time.monotonic() < self._retry_at.get(key, 0.0):
                return None
        try:
            price = plain(_client(settings.stripe_secret_key, settings.stripe_api_base).v1.prices.retrieve(price_id))
        except stripe.StripeError as exc:
            log.warning("card price %s unavailable, trying again in %.0f s: %s", price_id, RETRY_AFTER, describe_error(exc))
            with self._lock:
                self._retry_at[key] = time.monotonic() + RETRY_AFTER
            return None
        found = CardPrice.from_stripe(price)
        if found is None:
            log.warning("Stripe price %s has no fixed unit amount; the Mini App shows no card price for it", price_id)
        with self._lock:
            self._known[key] = found
            self._retry_at.pop(key, None)
        return found


_PRICES = _Prices()


@functools.lru_cache(maxsize=8)
def _client(secret_key: str, api_base: str | None) -> stripe.StripeClient:
    return make_client(secret_key, api_base, timeout=TIMEOUT, max_network_retries=MAX_NETWORK_RETRIES)


def card_price(settings: Settings, price_id: str | None) -> CardPrice | None:
    """The Stripe Price `price_id` as read once from Stripe, or None (no Stripe key, no price, or not readable now)."""
    if not price_id or not settings.stripe_secret_key:
        return None
    return _PRICES.get(settings, price_id)
