"""The Telegram Bot API and Stripe API stand-ins on one local port, for `entitle sandbox` and the benchmarks.

Requests go where their path says: `/bot<token>/<method>` to the Bot API stand-in, `/v1/…` to the
Stripe one, and `/_sandbox/…` (a path neither API uses) to what the sandbox is told by whoever
makes up payments, so that the service finds them when it asks:

- `POST /_sandbox/bot<token>/charges` `{"charges": [{"user_id", "telegram_payment_charge_id",
  "total_amount", "invoice_payload", "subscription_period"}]}`: Stars payments `refundStarPayment`
  may refund (once each); with an `invoice_payload`, also an incoming transaction in the bot's Star
  ledger (what `getStarTransactions` lists, and `entitle reconcile telegram` reads);
- `POST /_sandbox/stripe/checkout_sessions` with `Authorization: Bearer <key>`
  `{"sessions": [{"session", "prices", "payment_intent", "charge", "events"}]}`: paid Checkout
  Sessions with the prices their line items bill, and their PaymentIntent and charge, for retrieval
  and refunds; `events` are the events Stripe made of the payment, kept in its event list (what
  `GET /v1/events` lists, and `entitle reconcile stripe` reads) whether or not they were delivered;
- `GET /_sandbox`: what it holds, with the Star subscriptions canceled or re-allowed through
  `editUserStarSubscription`.

Everything is kept in memory and lost when the sandbox stops.
"""
from __future__ import annotations

import hmac
import json
import re
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

from simulate.serving import Served, send_json
from simulate.stripe_api import FakeStripeAPI
from simulate.telegram_api import FakeTelegramAPI

__all__ = [
    "BOT_TOKEN",
    "PREFIX",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "Sandbox",
    "SandboxError",
    "TELEGRAM_WEBHOOK_SECRET",
    "tell_stripe_checkouts",
    "tell_telegram_charges",
]

PREFIX = "/_sandbox"
# Values for local use only: the sandbox accepts this bot token and this Stripe test key, and the
# service and `entitle simulate` share the two webhook secrets (the sandbox itself never checks them).
BOT_TOKEN = "7000000001:sandbox-bot-token-for-local-use-only"
STRIPE_SECRET_KEY = "sk_test_entitle_sandbox_local_only"
TELEGRAM_WEBHOOK_SECRET = "sandbox-telegram-webhook-secret"
STRIPE_WEBHOOK_SECRET = "whsec_sandbox_stripe_webhook_secret_local_only"
MAX_BODY_BYTES = 64 * 1024 * 1024
# What a simulated Checkout charges (`stripe_events.checkout_session`), so the Mini App's card price agrees with it.
SIMULATED_CARD_AMOUNT = 500
_BOT_PATH = re.compile(r"^/bot[^/]+/")
_TELEGRAM_CHARGES = re.compile(r"^/_sandbox/bot(?P<token>[^/]+)/charges$")


class SandboxError(Exception):
    """The sandbox refused what it was told, or the address is not a sandbox."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Sandbox(Served):
    """Both stand-ins behind one threaded HTTP server on `host:port` (0: a free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, bot_token: str = BOT_TOKEN,
                 stripe_secret_key: str = STRIPE_SECRET_KEY, log=None) -> None:
        """`log`, when given, is called with one line per request (the bot token masked)."""
        self.host, self.port = host, port
        self.bot_token = bot_token
        self.stripe_secret_key = stripe_secret_key
        self.telegram = FakeTelegramAPI(bot_token, known_charges_only=True)
        self.stripe = FakeStripeAPI(secret_key=stripe_secret_key)
        self.log = log
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    thread_name = "entitle-sandbox"

    def _make_server(self) -> ThreadingHTTPServer:
        return _Server((self.host, self.port), type("_BoundHandler", (_Handler,), {"sandbox": self}))

    def environment(self) -> dict[str, str]:
        """The variables that point the service and the CLI at this sandbox."""
        return {
            "TELEGRAM_API_URL": self.url,
            "TELEGRAM_BOT_TOKEN": self.bot_token,
            "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_WEBHOOK_SECRET,
            "STRIPE_API_BASE": self.url,
            "STRIPE_SECRET_KEY": self.stripe_secret_key,
            "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        }

    def forget_calls(self) -> None:
        """Drop the requests both stand-ins recorded; keep every payment, session and object."""
        self.telegram.forget_calls()
        self.stripe.forget_calls()

    # -- what it is told -----------------------------------------------------------------

    def add_checkout(self, entry: Mapping[str, Any]) -> None:
        """Store one paid Checkout Session with the prices it bills, its PaymentIntent and charge, and its events, when given."""
        session = entry.get("session")
        prices = entry.get("prices") or []
        made = entry.get("events") or []
        if not isinstance(session, Mapping) or not isinstance(session.get("id"), str):
            raise SandboxError("each entry needs a session with an id")
        if not isinstance(prices, list) or not all(isinstance(p, str) for p in prices):
            raise SandboxError("prices must be a list of price ids")
        if not isinstance(made, list) or not all(_is_event(e) for e in made):
            raise SandboxError("events must be a list of Stripe events (each with an id, a type, a created time and data.object)")
        if isinstance(entry.get("charge"), Mapping):
            self.stripe.put_charge(entry["charge"])
        if isinstance(entry.get("payment_intent"), Mapping):
            self.stripe.put_payment_intent(entry["payment_intent"])
        self.stripe.put_checkout_session(session, prices=prices)
        for made_event in made:
            self.stripe.put_event(made_event)

    def add_plan_prices(self, plans: Iterable[Any]) -> int:
        """Give each card plan's `stripe_price` a USD Price of what `simulate stripe checkout` charges, unless it has one; how many were added."""
        added = 0
        for plan in plans:
            if not plan.stripe_price or plan.stripe_price in self.stripe.prices:
                continue
            interval = "month" if plan.stripe_mode == "subscription" else None
            self.stripe.put_price(price_id=plan.stripe_price, unit_amount=SIMULATED_CARD_AMOUNT, currency="usd", interval=interval)
            added += 1
        return added

    def summary(self) -> dict[str, Any]:
        """How much each stand-in holds."""
        with self.telegram._lock:
            charges, star_transactions = len(self.telegram._charges), len(self.telegram._star_transactions)
        edits = self.telegram.subscription_edits
        with self.stripe._lock:
            stripe_counts = {name: len(getattr(self.stripe, name)) for name in (
                "checkout_sessions", "payment_intents", "charges", "refunds", "customers", "subscriptions", "invoices")}
            stripe_counts["events"] = len(self.stripe.ledger_events)
        telegram = {"charges": charges, "star_transactions": star_transactions, "webhook": self.telegram.webhook.get("url", ""),
                    "subscription_edits": edits}
        return {"telegram": telegram, "stripe": stripe_counts}

    # -- HTTP ----------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        """Answer one request: (status, JSON body, extra headers)."""
        path = urlsplit(target).path
        if path.startswith("/bot"):
            status, payload = self.telegram.answer(target, headers.get("Content-Type", ""), body)
            return status, payload, {}
        if path.startswith("/v1/"):
            return self.stripe.answer(method, target, body, headers)
        if path == PREFIX or path.startswith(PREFIX + "/"):
            try:
                return 200, self._own(method, path, headers, body), {}
            except SandboxError as exc:
                return exc.status, {"error": {"code": "sandbox_refused", "message": str(exc)}}, {}
        return 404, {"error": {"code": "not_found", "message": f"no Telegram, Stripe or sandbox route {path}"}}, {}

    def _own(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        if method == "GET" and path.rstrip("/") == PREFIX:
            return self.summary()
        charges = _TELEGRAM_CHARGES.match(path)
        if method == "POST" and charges:
            if not hmac.compare_digest(charges["token"].encode(), self.bot_token.encode()):
                raise SandboxError("that bot token is not accepted here", 401)
            entries = _json_list(body, "charges")
            for entry in entries:
                try:
                    user_id, charge_id = int(entry["user_id"]), str(entry["telegram_payment_charge_id"])
                    amount = int(entry.get("total_amount") or 0)
                except (KeyError, TypeError, ValueError):
                    raise SandboxError("each charge needs user_id, telegram_payment_charge_id and total_amount") from None
                self.telegram.add_charge(user_id, charge_id, amount)
                if entry.get("invoice_payload"):
                    # Also in the bot's Star ledger, so `entitle reconcile telegram` finds it.
                    period = entry.get("subscription_period")
                    self.telegram.star_payment(user_id, amount, str(entry["invoice_payload"]), charge_id=charge_id,
                                               subscription_period=int(period) if period else None)
            return {"stored": len(entries)}
        if method == "POST" and path == PREFIX + "/stripe/checkout_sessions":
            scheme, _, key = (headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(key.encode(), self.stripe_secret_key.encode()):
                raise SandboxError("that Stripe key is not accepted here", 401)
            entries = _json_list(body, "sessions")
            for entry in entries:
                if not isinstance(entry, Mapping):
                    raise SandboxError("each session entry must be an object")
                self.add_checkout(entry)
            return {"stored": len(entries)}
        raise SandboxError(f"no sandbox route {method} {path}", 404)


def _is_event(event: object) -> bool:
    """True for what Stripe's event list can hold: an event object with an id, a type, a Unix `created` and `data.object`."""
    if not isinstance(event, Mapping):
        return False
    created, data = event.get("created"), event.get("data")
    return (isinstance(event.get("id"), str) and bool(event["id"]) and isinstance(event.get("type"), str)
            and isinstance(created, int) and not isinstance(created, bool)
            and isinstance(data, Mapping) and isinstance(data.get("object"), Mapping))


def _json_list(body: bytes, name: str) -> list:
    try:
        decoded = json.loads(body or b"{}")
    except ValueError:
        raise SandboxError("the body is not JSON") from None
    found = decoded.get(name) if isinstance(decoded, dict) else None
    if not isinstance(found, list):
        raise SandboxError(f"the body needs a list {name!r}")
    return found


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # concurrent clients must not wait for SYN retransmits
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    server_version = "entitle-sandbox"
    protocol_version = "HTTP/1.1"

    def _respond(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            status, payload, extra = 413, {"error": {"code": "payload_too_large", "message": "body too large"}}, {}
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
            status, payload, extra = self.sandbox.answer(method, self.path, self.headers, body)
        send_json(self, status, payload, extra)
        if self.sandbox.log is not None:
            self.sandbox.log(f"{method} {_masked(self.path)} {status}")

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._respond("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._respond("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


def _masked(target: str) -> str:
    """A request path fit for a log line: no bot token, no query string."""
    path = urlsplit(target).path
    path = _BOT_PATH.sub("/bot…/", path)
    return _TELEGRAM_CHARGES.sub("/_sandbox/bot…/charges", path)


# -- telling a sandbox what was made up ------------------------------------------------------


def _tell(url: str, payload: dict, headers: dict[str, str] | None = None) -> int:
    try:
        response = requests.post(url, json=payload, headers=headers or {}, timeout=30)
    except requests.RequestException as exc:
        raise SandboxError(f"cannot reach {urlsplit(url).netloc} ({type(exc).__name__})") from None
    if response.status_code == 404:
        raise SandboxError(f"{urlsplit(url).netloc} is not an entitle sandbox (it answered 404 at {PREFIX})")
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200:
        message = (answer.get("error") or {}).get("message") if isinstance(answer, dict) else None
        raise SandboxError(f"the sandbox answered {response.status_code}: {message or response.reason}")
    return int(answer.get("stored", 0)) if isinstance(answer, dict) else 0


def tell_telegram_charges(api_url: str, bot_token: str, charges: Iterable[Mapping[str, Any]]) -> int:
    """Tell the sandbox at `api_url` (TELEGRAM_API_URL) about Stars payments; returns how many it stored."""
    return _tell(f"{api_url.rstrip('/')}{PREFIX}/bot{bot_token}/charges", {"charges": list(charges)})


def tell_stripe_checkouts(api_base: str, secret_key: str, sessions: Iterable[Mapping[str, Any]]) -> int:
    """Tell the sandbox at `api_base` (STRIPE_API_BASE) about paid Checkout Sessions; returns how many it stored."""
    return _tell(f"{api_base.rstrip('/')}{PREFIX}/stripe/checkout_sessions", {"sessions": list(sessions)},
                 {"Authorization": f"Bearer {secret_key}"})
