"""A small Stripe API server for tests, benchmarks and `entitle sandbox`: the real stripe-python client talks to it over HTTP.

Point `STRIPE_API_BASE` (or `make_client(key, api_base=...)`) at `FakeStripeAPI().url`. It speaks
the parts of Stripe's v1 REST API that entitle uses, the way Stripe does
(https://docs.stripe.com/api):

- form-encoded parameters with nested brackets (`metadata[user]=1`, `line_items[0][price]=…`,
  `expand[]=…` or `expand[0]=…`), decoded into nested dicts and lists of strings in `.calls`;
- `Authorization: Bearer sk_…` (or `rk_…`) required, else a 401 Stripe-shaped error;
- `Idempotency-Key` on POST: the same key with the same parameters returns the first answer
  (with `Idempotent-Replayed: true`); concurrent requests with one key are serialised, so they
  create one object; the same key with other parameters is a 400 `idempotency_error`. As at
  Stripe, a request that ran to a result is remembered, a 4xx error included (injected, or found
  while executing, such as `charge_already_refunded`); one refused before it ran (authentication,
  a `parameter_*` error) or failing with a 5xx is not, so it may be sent again with the same key;
- unknown top-level parameters on create/update are rejected (`parameter_unknown`), judged by
  stripe-python's own generated parameter types, so a typo in our code fails as it would live;
- errors as `{"error": {"type", "code", "message", "param"}}` with Stripe's status codes, so
  stripe-python raises its own exception classes (`InvalidRequestError`, `CardError`, …);
- `expand[]` for ids (`customer`, `payment_intent`, `subscription`, `data.payment.payment_intent`…)
  and the includable `line_items` (Checkout Sessions) and `payments` (Invoices).

What it does not do: send webhooks (build them with `simulate.stripe_events` and sign them with
`app.stripe.signature.sign_payload`), paginate (except the event list), or model money movement
beyond refunds. It keeps a ledger of the events a test says happened (`put_event`), answered by
`GET /v1/events` with Stripe's list semantics (newest first, `created`, `type`/`types[]`,
`starting_after`/`ending_before`, `limit`, `has_more`).
Customer search answers at once; real Stripe search lags writes by up to a minute.
"""
from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import stripe
from requests.structures import CaseInsensitiveDict

from app.stripe import objects
from app.stripe.client import make_client
from simulate import stripe_events as events
from simulate.serving import Served, send_json

__all__ = ["Call", "FakeStripeAPI", "StripeErrorResponse", "decode_form"]

DEFAULT_SECRET_KEY = "sk_test_entitle_fake_0000000000000000"
_KEY = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9_]+$")
_REQUEST_OPTION_KEYS = {
    "api_key",
    "content_type",
    "headers",
    "idempotency_key",
    "max_network_retries",
    "stripe_account",
    "stripe_context",
    "stripe_version",
}


@dataclass(frozen=True)
class Call:
    """One request the fake received: method, path (no query), decoded params and headers."""

    method: str
    path: str
    params: dict
    headers: Mapping[str, str]


class StripeErrorResponse(Exception):
    """An error answer, shaped like Stripe's: raised inside handlers, sent as JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        error: dict[str, Any] = {"message": message, "type": type}
        if code:
            error["code"] = code
            error["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
        if param:
            error["param"] = param
        if decline_code:
            error["decline_code"] = decline_code
        self.body = {"error": error}


def _missing(param: str) -> StripeErrorResponse:
    return StripeErrorResponse(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def _no_such(kind: str, object_id: str, param: str = "id") -> StripeErrorResponse:
    status = 404 if param == "id" else 400
    return StripeErrorResponse(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


# --- form decoding ----------------------------------------------------------------------------

_KEY_PARTS = re.compile(r"\[([^\]]*)\]")


def _split_key(key: str) -> list[str]:
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    return [head] + _KEY_PARTS.findall("[" + rest)


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def decode_form(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's bracketed form encoding (`a[b][0]=x`, `expand[]=y`) as nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split_key(key)
        node = root
        for i, part in enumerate(parts):
            if part == "":
                part = str(len(node))  # `name[]` appends
            if i == len(parts) - 1:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _listify(root)


# --- parameter helpers ------------------------------------------------------------------------


def _int(params: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeErrorResponse(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=name) from None


def _bool(params: Mapping[str, Any], name: str, default: bool | None = None) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if value in ("true", "false"):
        return value == "true"
    raise StripeErrorResponse(400, f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=name)


def _merge_metadata(current: Mapping[str, str] | None, update: Any) -> dict[str, str]:
    """Stripe's rules: `metadata=""` clears all, `metadata[k]=""` removes k, other keys merge."""
    result = dict(current or {})
    if update is None:
        return result
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise StripeErrorResponse(400, "Invalid metadata: must be an object", code="parameter_invalid", param="metadata")
    for key, value in update.items():
        if len(key) > 40:
            raise StripeErrorResponse(400, f"Invalid metadata key: '{key}' is longer than 40 characters", code="parameter_invalid", param=f"metadata[{key}]")
        if not isinstance(value, str):
            raise StripeErrorResponse(400, "Invalid metadata value: must be a string", code="parameter_invalid", param=f"metadata[{key}]")
        if len(value) > 500:
            raise StripeErrorResponse(400, "Invalid metadata value: longer than 500 characters", code="parameter_invalid", param=f"metadata[{key}]")
        if value == "":
            result.pop(key, None)
        else:
            result[key] = value
    if len(result) > 50:
        raise StripeErrorResponse(400, "Metadata can have at most 50 keys", code="parameter_invalid", param="metadata")
    return result


def _allowed_params(class_path: str) -> set[str] | None:
    """Top-level parameter names stripe-python can send for an endpoint (None: do not check)."""
    module_name, _, name = class_path.rpartition(".")
    try:
        module = __import__(module_name, fromlist=[name])
        cls = getattr(module, name)
    except (ImportError, AttributeError):
        return None
    names: set[str] = set()
    for klass in getattr(cls, "__mro__", [cls]):
        names.update(getattr(klass, "__annotations__", {}))
    return names - _REQUEST_OPTION_KEYS


def _check_params(params: Mapping[str, Any], class_path: str) -> None:
    allowed = _allowed_params(class_path)
    if allowed is None:
        return
    for name in params:
        if name not in allowed:
            raise StripeErrorResponse(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def _expand_list(params: Mapping[str, Any]) -> list[str]:
    value = params.get("expand")
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _list_object(url: str, data: list[dict], limit: int | None = 10) -> dict:
    limit = 10 if limit is None else limit
    return {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "url": url}


@dataclass
class _Failure:
    method: str
    path_prefix: str
    error: StripeErrorResponse
    times: int | None


_Handler = Callable[[re.Match, dict, Call], tuple[int, Any]]


class FakeStripeAPI(Served):
    """A threaded Stripe API on 127.0.0.1 that keeps the objects created through it.

    `on_request`, when set, is called with each request's `Call` on the thread serving it, before
    it is answered (while the client waits); an exception it raises is answered as a 500.
    """

    def __init__(self, *, secret_key: str | None = None, strict_prices: bool = False) -> None:
        """`secret_key`: the only key accepted (any `sk_…`/`rk_…` when None); `strict_prices`: unknown prices are 400s."""
        self.secret_key = secret_key
        self.strict_prices = strict_prices
        self.portal_configured = True
        self.on_request: Callable[[Call], None] | None = None
        self.calls: list[Call] = []
        self.customers: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.checkout_sessions: dict[str, dict] = {}
        self.portal_sessions: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.payment_intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.invoice_payments: dict[str, list[dict]] = {}
        self.ledger_events: list[dict] = []  # what Stripe would list at GET /v1/events, oldest first
        self._line_items: dict[str, list[dict]] = {}
        self._session_extras: dict[str, dict] = {}
        self._lock = threading.RLock()
        self._idempotent: dict[tuple[str, str], tuple[tuple, int, Any]] = {}
        self._idempotency_locks: dict[tuple[str, str], threading.Lock] = {}
        self._failures: list[_Failure] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern, _Handler]] = [
            ("POST", re.compile(r"/v1/customers"), self._create_customer),
            ("GET", re.compile(r"/v1/customers"), self._list_customers),
            ("GET", re.compile(r"/v1/customers/search"), self._search_customers),
            ("GET", re.compile(r"/v1/customers/(?P<id>[^/]+)"), self._retrieve_customer),
            ("POST", re.compile(r"/v1/customers/(?P<id>[^/]+)"), self._update_customer),
            ("DELETE", re.compile(r"/v1/customers/(?P<id>[^/]+)"), self._delete_customer),
            ("GET", re.compile(r"/v1/prices/(?P<id>[^/]+)"), self._retrieve_price),
            ("POST", re.compile(r"/v1/checkout/sessions"), self._create_checkout_session),
            ("GET", re.compile(r"/v1/checkout/sessions"), self._list_checkout_sessions),
            ("GET", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)"), self._retrieve_checkout_session),
            ("GET", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)/line_items"), self._checkout_line_items),
            ("POST", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)/expire"), self._expire_checkout_session),
            ("POST", re.compile(r"/v1/billing_portal/sessions"), self._create_portal_session),
            ("GET", re.compile(r"/v1/subscriptions"), self._list_subscriptions),
            ("GET", re.compile(r"/v1/subscriptions/(?P<id>[^/]+)"), self._retrieve_subscription),
            ("POST", re.compile(r"/v1/subscriptions/(?P<id>[^/]+)"), self._update_subscription),
            ("DELETE", re.compile(r"/v1/subscriptions/(?P<id>[^/]+)"), self._cancel_subscription),
            ("POST", re.compile(r"/v1/refunds"), self._create_refund),
            ("GET", re.compile(r"/v1/refunds"), self._list_refunds),
            ("GET", re.compile(r"/v1/refunds/(?P<id>[^/]+)"), self._retrieve_refund),
            ("GET", re.compile(r"/v1/payment_intents/(?P<id>[^/]+)"), self._retrieve_payment_intent),
            ("GET", re.compile(r"/v1/charges/(?P<id>[^/]+)"), self._retrieve_charge),
            ("GET", re.compile(r"/v1/invoices/(?P<id>[^/]+)"), self._retrieve_invoice),
            ("GET", re.compile(r"/v1/invoice_payments"), self._list_invoice_payments),
            ("GET", re.compile(r"/v1/events"), self._list_events),
            ("GET", re.compile(r"/v1/events/(?P<id>[^/]+)"), self._retrieve_event),
        ]

    # --- lifecycle ----------------------------------------------------------------------------

    thread_name = "fake-stripe-api"

    def _make_server(self) -> ThreadingHTTPServer:
        return _Server(("127.0.0.1", 0), type("_BoundHandler", (_RequestHandler,), {"api": self}))

    def client(self, **kwargs: Any) -> stripe.StripeClient:
        """A `make_client` client for this server, with its accepted key and no retries unless asked."""
        kwargs.setdefault("max_network_retries", 0)
        return make_client(self.secret_key or DEFAULT_SECRET_KEY, self.url, **kwargs)

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        """The calls with this method whose path starts with `path_prefix`."""
        with self._lock:
            return [c for c in self.calls if c.method == method.upper() and c.path.startswith(path_prefix)]

    # --- test helpers -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every call, object, remembered idempotency key and injected failure."""
        with self._lock:
            self.calls.clear()
            for store in (
                self.customers, self.prices, self.checkout_sessions, self.portal_sessions, self.subscriptions,
                self.payment_intents, self.charges, self.refunds, self.invoices, self.invoice_payments,
                self._line_items, self._session_extras, self._idempotent, self._idempotency_locks,
                self.ledger_events,
            ):
                store.clear()
            self._failures.clear()
            self.portal_configured = True
            self.on_request = None

    def put_customer(self, obj: Mapping[str, Any] | None = None, **fields: Any) -> dict:
        """Store a customer (a full object, or `events.customer(**fields)`); returns a copy."""
        return self._put(self.customers, obj if obj is not None else events.customer(**fields))

    def put_price(self, obj: Mapping[str, Any] | None = None, **fields: Any) -> dict:
        """Store a price (a full object, or `events.price(**fields)`); returns a copy."""
        return self._put(self.prices, obj if obj is not None else events.price(**fields))

    def put_subscription(self, obj: Mapping[str, Any] | None = None, **fields: Any) -> dict:
        """Store a subscription (a full object, or `events.subscription(**fields)`); returns a copy."""
        return self._put(self.subscriptions, obj if obj is not None else events.subscription(**fields))

    def put_payment_intent(self, obj: Mapping[str, Any] | None = None, **fields: Any) -> dict:
        """Store a PaymentIntent and, when it has a `latest_charge` not yet stored, a matching succeeded charge."""
        pi = self._put(self.payment_intents, obj if obj is not None else events.payment_intent(**fields))
        charge_id = pi.get("latest_charge")
        with self._lock:
            if isinstance(charge_id, str) and charge_id not in self.charges:
                self.charges[charge_id] = events.charge(
                    charge_id=charge_id,
                    payment_intent=pi["id"],
                    customer=objects.expandable_id(pi.get("customer")),
                    amount=pi.get("amount_received") or pi.get("amount") or 0,
                    currency=pi.get("currency", "usd"),
                )
        return pi

    def put_charge(self, obj: Mapping[str, Any] | None = None, **fields: Any) -> dict:
        """Store a charge (a full object, or `events.charge(**fields)`); returns a copy."""
        return self._put(self.charges, obj if obj is not None else events.charge(**fields))

    def put_invoice(self, obj: Mapping[str, Any] | None = None, **fields: Any) -> dict:
        """Store an invoice; its `payments`, if any, are kept aside and shown only when expanded."""
        inv = dict(copy.deepcopy(obj if obj is not None else events.invoice(**fields)))
        payments = inv.pop("payments", None)
        with self._lock:
            self.invoices[inv["id"]] = inv
            if isinstance(payments, dict):
                self.invoice_payments[inv["id"]] = list(payments.get("data") or [])
        return copy.deepcopy(inv)

    def put_checkout_session(
        self, obj: Mapping[str, Any] | None = None, *, prices: Sequence[str | Mapping[str, Any]] = (), **fields: Any
    ) -> dict:
        """Store a Checkout Session (a full object, or `events.checkout_session(**fields)`) whose line items bill `prices`.

        Each price is an id (a stored price, else a one-time price of the session's amount and
        currency under that id) or a full Price object; returns a copy of the session.
        """
        session = self._put(self.checkout_sessions, obj if obj is not None else events.checkout_session(**fields))
        items = []
        for price in prices:
            if isinstance(price, str):
                price = self.prices.get(price) or events.price(
                    price_id=price, unit_amount=session.get("amount_total"), currency=session.get("currency") or "usd", interval=None
                )
            items.append(_line_item(price))
        with self._lock:
            self._line_items[session["id"]] = items
        return session

    def set_checkout_session(self, session_id: str, **fields: Any) -> dict:
        """Change a stored Checkout Session; `payment_status="paid"` completes it as Stripe would.

        Completing creates what Stripe creates: a customer when needed, and a succeeded
        PaymentIntent with its charge (payment mode) or an active subscription with a paid
        invoice (subscription mode), carrying `payment_intent_data` / `subscription_data`
        metadata from the create call. Fields passed explicitly win.
        """
        with self._lock:
            session = self.checkout_sessions.get(session_id)
            if session is None:
                raise KeyError(session_id)
            completing = fields.get("payment_status") in ("paid", "no_payment_required") and session["status"] == "open"
            session.update(copy.deepcopy(fields))
            if completing:
                if "status" not in fields:
                    session["status"] = "complete"
                if "url" not in fields:
                    session["url"] = None
                self._complete_session(session, fields)
            return copy.deepcopy(session)

    def put_event(self, event: Mapping[str, Any]) -> dict:
        """Keep an event in Stripe's ledger (what `GET /v1/events` lists), whether or not it was delivered; returns a copy."""
        event = copy.deepcopy(dict(event))
        if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
            raise ValueError("an event needs an 'id' and a 'type'")
        with self._lock:
            self.ledger_events = [e for e in self.ledger_events if e["id"] != event["id"]] + [event]
        return copy.deepcopy(event)

    def fail(
        self,
        method: str,
        path_prefix: str,
        *,
        status: int = 400,
        code: str | None = None,
        message: str | None = None,
        type: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer matching requests with a Stripe error (`times` answers, or until `clear_failures`)."""
        if type is None:
            type = "card_error" if status == 402 else "api_error" if status >= 500 else "invalid_request_error"
        error = StripeErrorResponse(
            status, message or f"Injected failure ({code or status})", type=type, code=code, param=param, decline_code=decline_code
        )
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_prefix, error, times))

    def fail_refunds(self, code: str = "charge_already_refunded", message: str | None = None, *, status: int = 400, times: int | None = None) -> None:
        """Make `POST /v1/refunds` fail, by default with 400 `charge_already_refunded`."""
        self.fail("POST", "/v1/refunds", status=status, code=code, message=message or "This charge has already been refunded.", times=times)

    def clear_failures(self) -> None:
        """Forget every injected failure."""
        with self._lock:
            self._failures.clear()

    # --- request handling ---------------------------------------------------------------------

    def _put(self, store: dict[str, dict], obj: Mapping[str, Any]) -> dict:
        obj = copy.deepcopy(dict(obj))
        if not isinstance(obj.get("id"), str):
            raise ValueError("a Stripe object needs an 'id'")
        with self._lock:
            store[obj["id"]] = obj
        return copy.deepcopy(obj)

    def forget_calls(self) -> None:
        """Drop the recorded calls (a long-running server keeps its objects, not every request)."""
        with self._lock:
            self.calls.clear()

    def answer(self, method: str, target: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        """Answer one HTTP request to `target` (path and query): (status, JSON body, extra headers), as Stripe would."""
        return self._handle_request(method, target, body, headers)

    def _handle_request(self, method: str, target: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        """Answer one HTTP request: (status, JSON body, extra headers)."""
        split = urlsplit(target)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        if body:
            pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        call = Call(method, split.path, decode_form(pairs), CaseInsensitiveDict(dict(headers.items())))
        with self._lock:
            self.calls.append(call)
        extra = {"Request-Id": events.new_id("req", 14)}
        version = call.headers.get("Stripe-Version")
        extra["Stripe-Version"] = version or stripe.api_version
        try:
            if self.on_request is not None:
                self.on_request(call)
            auth = self._check_auth(call.headers.get("Authorization"))
            key = call.headers.get("Idempotency-Key") if method == "POST" else None
            if not key:
                status, payload = self._dispatch(call)
                return status, payload, extra
            extra["Idempotency-Key"] = key
            scope = (auth, key)
            with self._lock:
                key_lock = self._idempotency_locks.setdefault(scope, threading.Lock())
            with key_lock:
                fingerprint = (method, call.path, json.dumps(call.params, sort_keys=True))
                saved = self._idempotent.get(scope)
                if saved is not None:
                    if saved[0] != fingerprint:
                        raise StripeErrorResponse(
                            400,
                            "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                            f"Try using a key other than '{key}' if you meant to execute a different request.",
                            type="idempotency_error",
                        )
                    extra["Idempotent-Replayed"] = "true"
                    return saved[1], copy.deepcopy(saved[2]), extra
                try:
                    status, payload = self._dispatch(call)
                except StripeErrorResponse as err:
                    if err.status < 500 and not str(err.body["error"].get("code", "")).startswith("parameter_"):
                        self._idempotent[scope] = (fingerprint, err.status, copy.deepcopy(err.body))
                    raise
                self._idempotent[scope] = (fingerprint, status, copy.deepcopy(payload))
                return status, payload, extra
        except StripeErrorResponse as err:
            return err.status, err.body, extra
        except Exception as exc:  # a bug in the fake: answer as Stripe's 500s do, and say what broke
            error = StripeErrorResponse(500, f"FakeStripeAPI failed: {type(exc).__name__}: {exc}", type="api_error")
            return 500, error.body, {**extra, "Stripe-Should-Retry": "false"}

    def _check_auth(self, header: str | None) -> str:
        scheme, _, key = (header or "").partition(" ")
        if scheme != "Bearer" or not key:
            raise StripeErrorResponse(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication "
                "for details, or we can help at https://support.stripe.com/.",
            )
        if not _KEY.match(key) or (self.secret_key is not None and key != self.secret_key):
            masked = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else "*" * len(key)
            raise StripeErrorResponse(401, f"Invalid API Key provided: {masked}")
        return key

    def _dispatch(self, call: Call) -> tuple[int, Any]:
        with self._lock:
            for failure in self._failures:
                if failure.method == call.method and call.path.startswith(failure.path_prefix):
                    if failure.times is not None:
                        failure.times -= 1
                        if failure.times <= 0:
                            self._failures.remove(failure)
                    raise failure.error
        for method, pattern, handler in self._routes:
            if method == call.method:
                match = pattern.fullmatch(call.path)
                if match:
                    with self._lock:
                        status, payload = handler(match, call.params, call)
                        payload = self._expand(payload, _expand_list(call.params))
                        return status, payload
        raise StripeErrorResponse(
            404,
            f"Unrecognized request URL ({call.method}: {call.path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )

    # --- expansion ----------------------------------------------------------------------------

    def _lookup(self, object_id: str) -> dict | None:
        prefix = object_id.split("_", 1)[0]
        store = {
            "cus": self.customers,
            "price": self.prices,
            "cs": self.checkout_sessions,
            "sub": self.subscriptions,
            "pi": self.payment_intents,
            "ch": self.charges,
            "py": self.charges,
            "re": self.refunds,
            "in": self.invoices,
        }.get(prefix)
        found = store.get(object_id) if store is not None else None
        return copy.deepcopy(found) if found is not None else None

    def _expand(self, payload: Any, paths: list[str]) -> Any:
        for path in paths:
            self._expand_path(payload, path.split("."))
        return payload

    def _expand_path(self, node: Any, parts: list[str]) -> None:
        if isinstance(node, list):
            for item in node:
                self._expand_path(item, parts)
            return
        if not isinstance(node, dict) or not parts:
            return
        head, rest = parts[0], parts[1:]
        if head == "line_items" and node.get("object") == "checkout.session" and "line_items" not in node:
            data = copy.deepcopy(self._line_items.get(node["id"], []))
            node["line_items"] = _list_object(f"/v1/checkout/sessions/{node['id']}/line_items", data)
        if head == "payments" and node.get("object") == "invoice" and "payments" not in node:
            data = copy.deepcopy(self.invoice_payments.get(node["id"], []))
            node["payments"] = _list_object(f"/v1/invoice_payments?invoice={node['id']}", data)
        value = node.get(head)
        if isinstance(value, str) and not rest:
            found = self._lookup(value)
            if found is not None:
                node[head] = found
        elif value is not None:
            self._expand_path(value, rest)

    # --- customers ----------------------------------------------------------------------------

    def _customer(self, customer_id: str, param: str = "id") -> dict:
        found = self.customers.get(customer_id)
        if found is None or found.get("deleted"):
            raise _no_such("customer", customer_id, param)
        return found

    def _create_customer(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        _check_params(params, "stripe.params.CustomerCreateParams")
        obj = events.customer(
            email=params.get("email") or None,
            name=params.get("name") or None,
            description=params.get("description") or None,
            phone=params.get("phone") or None,
            metadata=_merge_metadata({}, params.get("metadata")),
        )
        self.customers[obj["id"]] = obj
        return 200, copy.deepcopy(obj)

    def _list_customers(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = [c for c in self.customers.values() if not c.get("deleted")]
        if params.get("email"):
            found = [c for c in found if c.get("email") == params["email"]]
        found.sort(key=lambda c: c["created"], reverse=True)
        return 200, _list_object("/v1/customers", copy.deepcopy(found), _int(params, "limit"))

    _SEARCH_CLAUSE = re.compile(
        r"""\s*(?:metadata\[(?P<q1>['"])(?P<mkey>.+?)(?P=q1)\]|(?P<field>[a-z_]+))\s*:\s*(?P<q2>['"])(?P<value>.*?)(?P=q2)\s*""",
    )

    def _search_customers(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        query = params.get("query")
        if not query:
            raise _missing("query")
        joiner = " OR " if " OR " in query else " AND "
        clauses = []
        for text in query.split(joiner):
            m = self._SEARCH_CLAUSE.fullmatch(text)
            if not m:
                raise StripeErrorResponse(400, f"Invalid search query: {query}", code="parameter_invalid", param="query")
            clauses.append((m.group("mkey"), m.group("field"), m.group("value")))

        def hit(c: dict, mkey: str | None, field: str | None, value: str) -> bool:
            if mkey is not None:
                return (c.get("metadata") or {}).get(mkey) == value
            return str(c.get(field) or "") == value

        combine = any if joiner == " OR " else all
        found = [c for c in self.customers.values() if not c.get("deleted") and combine(hit(c, *cl) for cl in clauses)]
        found.sort(key=lambda c: c["created"], reverse=True)
        limit = _int(params, "limit", 10)
        return 200, {
            "object": "search_result",
            "data": copy.deepcopy(found[:limit]),
            "has_more": len(found) > limit,
            "next_page": None,
            "url": "/v1/customers/search",
        }

    def _retrieve_customer(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = self.customers.get(match["id"])
        if found is None:
            raise _no_such("customer", match["id"])
        return 200, copy.deepcopy(found)

    def _update_customer(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        _check_params(params, "stripe.params.CustomerUpdateParams")
        obj = self._customer(match["id"])
        for name in ("email", "name", "description", "phone"):
            if name in params:
                obj[name] = params[name] or None
        if "metadata" in params:
            obj["metadata"] = _merge_metadata(obj.get("metadata"), params["metadata"])
        return 200, copy.deepcopy(obj)

    def _delete_customer(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        self._customer(match["id"])
        self.customers[match["id"]] = {"id": match["id"], "object": "customer", "deleted": True}
        return 200, {"id": match["id"], "object": "customer", "deleted": True}

    # --- prices -------------------------------------------------------------------------------

    def _retrieve_price(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = self.prices.get(match["id"])
        if found is None:
            raise _no_such("price", match["id"])
        return 200, copy.deepcopy(found)

    def _line_item_price(self, item: dict, index: int, mode: str) -> dict:
        price_id = item.get("price")
        if price_id:
            found = self.prices.get(price_id)
            if found is None:
                if self.strict_prices:
                    raise _no_such("price", price_id, f"line_items[{index}][price]")
                found = events.price(price_id=price_id, interval="month" if mode == "subscription" else None)
                self.prices[price_id] = found
            return copy.deepcopy(found)
        data = item.get("price_data")
        if not isinstance(data, dict):
            raise StripeErrorResponse(
                400, "You must specify either `price` or `price_data` for each line item.", code="parameter_missing", param=f"line_items[{index}]"
            )
        recurring = data.get("recurring") if isinstance(data.get("recurring"), dict) else None
        return events.price(
            unit_amount=_int(data, "unit_amount", 0),
            currency=data.get("currency") or "usd",
            interval=recurring.get("interval", "month") if recurring else None,
            product=data.get("product") or None,
        )

    # --- checkout sessions --------------------------------------------------------------------

    def _create_checkout_session(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        _check_params(params, "stripe.params.checkout.SessionCreateParams")
        mode = params.get("mode")
        if not mode:
            raise _missing("mode")
        if mode not in ("payment", "subscription", "setup"):
            raise StripeErrorResponse(400, "Invalid mode: must be one of payment, setup, or subscription", code="parameter_invalid", param="mode")
        customer_id = params.get("customer") or None
        if customer_id:
            self._customer(customer_id, "customer")
            if params.get("customer_email"):
                raise StripeErrorResponse(
                    400, "You may only specify one of these parameters: customer, customer_email.", code="parameter_invalid", param="customer_email"
                )
        raw_items = params.get("line_items")
        if mode != "setup" and not raw_items:
            raise _missing("line_items")
        if raw_items is not None and not isinstance(raw_items, list):
            raise StripeErrorResponse(400, "Invalid array", code="parameter_invalid", param="line_items")
        line_items: list[dict] = []
        for index, item in enumerate(raw_items or []):
            if not isinstance(item, dict):
                raise StripeErrorResponse(400, "Invalid object", code="parameter_invalid", param=f"line_items[{index}]")
            price_obj = self._line_item_price(item, index, mode)
            quantity = _int(item, "quantity")
            if quantity is None:
                raise _missing(f"line_items[{index}][quantity]")
            line_items.append(_line_item(price_obj, quantity))
        recurring = [li for li in line_items if li["price"].get("recurring")]
        if mode == "subscription" and not recurring:
            raise StripeErrorResponse(
                400, "You must provide at least one recurring price in `subscription` mode when using prices.", code="parameter_invalid", param="line_items"
            )
        if mode == "payment" and recurring:
            raise StripeErrorResponse(
                400,
                "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.",
                code="parameter_invalid",
                param="line_items",
            )
        totals = [li["amount_total"] for li in line_items]
        amount_total = sum(totals) if totals and None not in totals else None
        currencies = {li["currency"] for li in line_items if li["currency"]}
        session = events.checkout_session(
            mode=mode,
            payment_status="no_payment_required" if mode == "setup" else "unpaid",
            status="open",
            customer=customer_id,
            customer_email=params.get("customer_email") or None,
            client_reference_id=params.get("client_reference_id") or None,
            metadata=_merge_metadata({}, params.get("metadata")),
            amount_total=amount_total,
            currency=(params.get("currency") or next(iter(sorted(currencies)), None)),
            success_url=params.get("success_url") or None,
            cancel_url=params.get("cancel_url") or None,
        )
        session["customer_creation"] = None if customer_id else (params.get("customer_creation") or ("always" if mode == "subscription" else "if_required"))
        session["expires_at"] = _int(params, "expires_at", session["expires_at"])
        if params.get("locale"):
            session["locale"] = params["locale"]
        ui_mode = params.get("ui_mode") or "hosted"
        session["ui_mode"] = ui_mode
        if ui_mode != "hosted":
            session["url"] = None
            session["client_secret"] = f"{session['id']}_secret_" + secrets.token_urlsafe(18)
            session["return_url"] = params.get("return_url") or None
        self.checkout_sessions[session["id"]] = session
        self._line_items[session["id"]] = line_items
        self._session_extras[session["id"]] = {
            "payment_intent_data": params.get("payment_intent_data") if isinstance(params.get("payment_intent_data"), dict) else {},
            "subscription_data": params.get("subscription_data") if isinstance(params.get("subscription_data"), dict) else {},
        }
        return 200, copy.deepcopy(session)

    def _checkout_session(self, session_id: str) -> dict:
        found = self.checkout_sessions.get(session_id)
        if found is None:
            raise _no_such("checkout.session", session_id)
        return found

    def _list_checkout_sessions(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = list(self.checkout_sessions.values())
        for name in ("customer", "payment_intent", "subscription", "status"):
            if params.get(name):
                found = [s for s in found if objects.expandable_id(s.get(name)) == params[name] or s.get(name) == params[name]]
        found.sort(key=lambda s: s["created"], reverse=True)
        return 200, _list_object("/v1/checkout/sessions", copy.deepcopy(found), _int(params, "limit"))

    def _retrieve_checkout_session(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._checkout_session(match["id"]))

    def _checkout_line_items(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        self._checkout_session(match["id"])
        items = copy.deepcopy(self._line_items.get(match["id"], []))
        return 200, _list_object(f"/v1/checkout/sessions/{match['id']}/line_items", items, _int(params, "limit"))

    def _expire_checkout_session(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        session = self._checkout_session(match["id"])
        if session["status"] != "open":
            raise StripeErrorResponse(
                400, f"Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{session['status']}\".",
            )
        session.update(status="expired", url=None)
        return 200, copy.deepcopy(session)

    def _complete_session(self, session: dict, fields: Mapping[str, Any]) -> None:
        extras = self._session_extras.get(session["id"], {})
        items = self._line_items.get(session["id"], [])
        amount = session.get("amount_total") or 0
        currency = session.get("currency") or "usd"
        if not session.get("customer") and (session["mode"] == "subscription" or session.get("customer_creation") == "always"):
            cus = events.customer(email=session.get("customer_email"))
            self.customers[cus["id"]] = cus
            session["customer"] = cus["id"]
        customer_id = objects.expandable_id(session.get("customer"))
        if session.get("customer_details") is None:
            session["customer_details"] = {
                "address": None,
                "email": session.get("customer_email") or "payer@example.com",
                "name": None,
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            }
        if session["mode"] == "payment" and "payment_intent" not in fields and not session.get("payment_intent"):
            pi_meta = (extras.get("payment_intent_data") or {}).get("metadata")
            pi = events.payment_intent(amount=amount, currency=currency, customer=customer_id, metadata=_merge_metadata({}, pi_meta))
            self.put_payment_intent(pi)
            session["payment_intent"] = pi["id"]
        if session["mode"] == "subscription" and "subscription" not in fields and not session.get("subscription"):
            sub_meta = _merge_metadata({}, (extras.get("subscription_data") or {}).get("metadata"))
            recurring = next((li for li in items if li["price"].get("recurring")), None)
            price_obj = recurring["price"] if recurring else events.price()
            pi = events.payment_intent(amount=amount, currency=currency, customer=customer_id)
            self.put_payment_intent(pi)
            sub = events.subscription(customer=customer_id, price=price_obj, metadata=sub_meta, quantity=recurring["quantity"] if recurring else 1)
            inv = events.invoice(
                customer=customer_id,
                subscription=sub["id"],
                subscription_item=sub["items"]["data"][0]["id"],
                subscription_metadata=sub_meta,
                price=price_obj,
                amount=amount,
                currency=currency,
                period_start=sub["items"]["data"][0]["current_period_start"],
                period_end=sub["items"]["data"][0]["current_period_end"],
                payment_intent=pi["id"],
            )
            sub["latest_invoice"] = inv["id"]
            self.subscriptions[sub["id"]] = sub
            self.put_invoice(inv)
            session["subscription"] = sub["id"]
            session["invoice"] = inv["id"]

    # --- billing portal -----------------------------------------------------------------------

    def _create_portal_session(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        _check_params(params, "stripe.params.billing_portal.SessionCreateParams")
        customer_id = params.get("customer")
        if not customer_id:
            raise _missing("customer")
        self._customer(customer_id, "customer")
        if not self.portal_configured:
            raise StripeErrorResponse(
                400,
                "You can't create a portal session in test mode until you save your customer portal settings in test mode "
                "at https://dashboard.stripe.com/test/settings/billing/portal.",
            )
        session_id = events.new_id("bps")
        obj = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": params.get("configuration") or events.new_id("bpc"),
            "created": int(time.time()),
            "customer": customer_id,
            "flow": None,
            "livemode": False,
            "locale": params.get("locale") or None,
            "on_behalf_of": None,
            "return_url": params.get("return_url") or None,
            "url": "https://billing.stripe.com/p/session/test_" + secrets.token_urlsafe(36),
        }
        self.portal_sessions[session_id] = obj
        return 200, copy.deepcopy(obj)

    # --- subscriptions ------------------------------------------------------------------------

    def _subscription(self, subscription_id: str) -> dict:
        found = self.subscriptions.get(subscription_id)
        if found is None:
            raise _no_such("subscription", subscription_id)
        return found

    def _list_subscriptions(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = list(self.subscriptions.values())
        if params.get("customer"):
            found = [s for s in found if objects.expandable_id(s.get("customer")) == params["customer"]]
        status = params.get("status")
        if status and status != "all":
            found = [s for s in found if s.get("status") == status]
        elif not status:
            found = [s for s in found if s.get("status") != "canceled"]
        found.sort(key=lambda s: s.get("created", 0), reverse=True)
        return 200, _list_object("/v1/subscriptions", copy.deepcopy(found), _int(params, "limit"))

    def _retrieve_subscription(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._subscription(match["id"]))

    def _update_subscription(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        _check_params(params, "stripe.params.SubscriptionUpdateParams")
        sub = self._subscription(match["id"])
        if sub.get("status") in ("canceled", "incomplete_expired") and set(params) - {"metadata", "cancellation_details", "expand"}:
            raise StripeErrorResponse(
                400,
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
        if "cancel_at_period_end" in params:
            flag = _bool(params, "cancel_at_period_end")
            sub["cancel_at_period_end"] = flag
            sub["cancel_at"] = objects.subscription_period_end(sub) if flag else None
            sub["canceled_at"] = int(time.time()) if flag else None
        if "metadata" in params:
            sub["metadata"] = _merge_metadata(sub.get("metadata"), params["metadata"])
        return 200, copy.deepcopy(sub)

    def _cancel_subscription(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        _check_params(params, "stripe.params.SubscriptionCancelParams")
        sub = self._subscription(match["id"])
        if sub.get("status") == "canceled":
            raise StripeErrorResponse(404, f"No such subscription: '{match['id']}'", code="resource_missing", param="id")
        now = int(time.time())
        sub.update(status="canceled", canceled_at=now, ended_at=now, cancel_at=None, cancel_at_period_end=False)
        return 200, copy.deepcopy(sub)

    # --- refunds, payment intents, charges, invoices ------------------------------------------

    def _create_refund(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        _check_params(params, "stripe.params.RefundCreateParams")
        pi_id = params.get("payment_intent") or None
        charge_id = params.get("charge") or None
        if not pi_id and not charge_id:
            raise StripeErrorResponse(
                400, "One of the following params should be provided for this request: payment_intent or charge.", code="parameter_missing"
            )
        if pi_id:
            pi = self.payment_intents.get(pi_id)
            if pi is None:
                raise _no_such("payment_intent", pi_id, "payment_intent")
            charge_id = objects.expandable_id(pi.get("latest_charge"))
            if pi.get("status") != "succeeded" or not charge_id:
                raise StripeErrorResponse(
                    400,
                    f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                    code="payment_intent_unexpected_state",
                    param="payment_intent",
                )
        charge = self.charges.get(charge_id) if charge_id else None
        if charge is None:
            raise _no_such("charge", str(charge_id), "charge")
        pi_id = pi_id or objects.expandable_id(charge.get("payment_intent"))
        remaining = charge["amount"] - charge.get("amount_refunded", 0)
        if remaining <= 0:
            raise StripeErrorResponse(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = _int(params, "amount", remaining)
        if amount <= 0:
            raise StripeErrorResponse(400, "Invalid positive integer", code="parameter_invalid_integer", param="amount")
        if amount > remaining:
            raise StripeErrorResponse(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                code="amount_too_large",
                param="amount",
            )
        obj = events.refund(
            payment_intent=pi_id,
            charge=charge["id"],
            amount=amount,
            currency=charge.get("currency", "usd"),
            reason=params.get("reason") or None,
            metadata=_merge_metadata({}, params.get("metadata")),
        )
        charge["amount_refunded"] = charge.get("amount_refunded", 0) + amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self.refunds[obj["id"]] = obj
        return 200, copy.deepcopy(obj)

    def _list_refunds(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = list(self.refunds.values())
        for name in ("payment_intent", "charge"):
            if params.get(name):
                found = [r for r in found if r.get(name) == params[name]]
        found.sort(key=lambda r: r["created"], reverse=True)
        return 200, _list_object("/v1/refunds", copy.deepcopy(found), _int(params, "limit"))

    def _retrieve_refund(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = self.refunds.get(match["id"])
        if found is None:
            raise _no_such("refund", match["id"])
        return 200, copy.deepcopy(found)

    def _retrieve_payment_intent(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = self.payment_intents.get(match["id"])
        if found is None:
            raise _no_such("payment_intent", match["id"])
        return 200, copy.deepcopy(found)

    def _retrieve_charge(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = self.charges.get(match["id"])
        if found is None:
            raise _no_such("charge", match["id"])
        return 200, copy.deepcopy(found)

    def _retrieve_invoice(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        found = self.invoices.get(match["id"])
        if found is None:
            raise _no_such("invoice", match["id"])
        return 200, copy.deepcopy(found)

    def _list_events(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        limit = _int(params, "limit", 10)
        if not 1 <= limit <= 100:
            raise StripeErrorResponse(400, "This value must be greater than or equal to 1 and less than or equal to 100.", code="parameter_invalid_integer", param="limit")
        if params.get("type") and params.get("types"):
            raise StripeErrorResponse(400, "You may only specify one of these parameters: type, types.", code="parameter_invalid", param="types")
        types = params.get("types") or ([params["type"]] if params.get("type") else [])
        types = [types] if isinstance(types, str) else list(types)
        # Newest first; of two in the same second, the one stored later first.
        newest_first = list(reversed(sorted(enumerate(self.ledger_events), key=lambda p: (int(p[1]["created"]), p[0]))))
        found = [
            e for _, e in newest_first
            if _created_matches(int(e["created"]), params.get("created")) and (not types or any(_type_matches(e["type"], t) for t in types))
        ]
        ids = [e["id"] for e in found]
        for cursor in ("starting_after", "ending_before"):
            if params.get(cursor) and params[cursor] not in {e["id"] for e in self.ledger_events}:
                raise _no_such("event", params[cursor], cursor)
        if params.get("starting_after"):
            after = params["starting_after"]
            found = found[ids.index(after) + 1:] if after in ids else []
        elif params.get("ending_before"):
            before = params["ending_before"]
            found = found[:ids.index(before)] if before in ids else []
            if len(found) > limit:  # the page just before the cursor
                return 200, {"object": "list", "data": copy.deepcopy(found[-limit:]), "has_more": True, "url": "/v1/events"}
        return 200, copy.deepcopy(_list_object("/v1/events", found, limit))

    def _retrieve_event(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        for event in self.ledger_events:
            if event["id"] == match["id"]:
                return 200, copy.deepcopy(event)
        raise _no_such("event", match["id"])

    def _list_invoice_payments(self, match: re.Match, params: dict, call: Call) -> tuple[int, Any]:
        invoice_id = params.get("invoice")
        if invoice_id:
            found = list(self.invoice_payments.get(invoice_id, []))
        else:
            found = [p for payments in self.invoice_payments.values() for p in payments]
        return 200, _list_object("/v1/invoice_payments", copy.deepcopy(found), _int(params, "limit"))


def _created_matches(created: int, condition: Any) -> bool:
    """Stripe's `created` filter: an exact Unix time, or `gt`/`gte`/`lt`/`lte` bounds."""
    if condition is None or condition == "":
        return True
    if not isinstance(condition, dict):
        return created == _int({"created": condition}, "created")
    checks = {"gt": created.__gt__, "gte": created.__ge__, "lt": created.__lt__, "lte": created.__le__}
    for name, value in condition.items():
        if name not in checks:
            raise StripeErrorResponse(400, f"Received unknown parameter: created[{name}]", code="parameter_unknown", param=f"created[{name}]")
        if not checks[name](_int(condition, name)):
            return False
    return True


def _type_matches(type_: str, wanted: str) -> bool:
    return type_.startswith(wanted[:-1]) if wanted.endswith("*") else type_ == wanted


def _line_item(price_obj: Mapping[str, Any], quantity: int = 1) -> dict:
    """A Checkout Session line item (`object: "item"`) for a price, with its full Price object as Stripe lists it."""
    unit = price_obj.get("unit_amount")
    total = None if unit is None else unit * quantity
    return {
        "id": events.new_id("li"),
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": 0,
        "amount_subtotal": total,
        "amount_tax": 0,
        "amount_total": total,
        "currency": price_obj.get("currency"),
        "description": price_obj.get("product"),
        "discounts": [],
        "price": copy.deepcopy(dict(price_obj)),
        "quantity": quantity,
        "taxes": [],
    }


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # concurrent clients must not wait for SYN retransmits
    daemon_threads = True


class _RequestHandler(BaseHTTPRequestHandler):
    api: FakeStripeAPI
    server_version = "stripe"

    def _respond(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload, extra = self.api._handle_request(method, self.path, body, self.headers)
        send_json(self, status, payload, extra)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._respond("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._respond("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass
