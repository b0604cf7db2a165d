"""Bad input against the live service: generated bodies and headers (hypothesis) for the three public endpoints.

Rejected input: forged and stale Stripe signatures, bodies changed after signing, wrong or missing
Telegram secret tokens, malformed updates, tampered, stale and future initData, forged and expired
JWTs, oversized (also chunked) and non-UTF-8 bodies; and, past authentication, Telegram updates and
signed Stripe events whose fields have the wrong type, size or range. Every answer must be a JSON
error below 500 (the field-shape ones a 400 that names the field), and no row may appear.

Mismatched payments: authentic, well-formed payment reports that are not what was sold (wrong
amount, currency, payer or period; a Checkout Session Stripe does not know; a plan not sold by
card). They are accepted (200), and once the workers have handled them each event must have ended
`failed` or `ignored` with no grant.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import config, payloads

EXAMPLES = config.size(150, 600)
# Header values as HTTP allows them (visible ASCII, space, obs-text); a control character makes the
# request invalid HTTP, which gunicorn's parser refuses with its own HTML 400 before the app runs.
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_categories=("Cc",)),
                      max_size=120)
OVERSIZE = 1024 * 1024 + 1
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
junk_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.just(b"\xff\xfe{not utf-8"),
    st.just(b'{"truncated": '),
)


class Checker:
    """Sends requests and records every answer that breaks the rules."""

    def __init__(self, url: str, stripe_api: str | None = None):
        self.url = url
        self.stripe_api = stripe_api  # the Stripe stand-in's address
        self.http = requests.Session()
        self.sent = 0
        self.statuses: dict[str, int] = {}
        self.violations: list[str] = []
        self.recorded: list[tuple[str, str, str]] = []  # (provider, external id, how broken) of accepted reports

    def send(self, method: str, path: str, *, body=b"", headers: dict | None = None, expect_reject: bool = True,
             expect_status: int | None = None, code: str | None = None, names: str | None = None,
             note: str | None = None):
        """One request; a 5xx, an accepted bad request, another status than `expect_status`, a non-JSON
        rejection, or an error whose code is not `code` or whose message does not name the field `names`, is a violation."""
        response = self.http.request(method, self.url + path, data=body, headers=headers or {}, timeout=30)
        self.sent += 1
        self.statuses[str(response.status_code)] = self.statuses.get(str(response.status_code), 0) + 1
        problem = _problem(response, expect_reject, expect_status, code, names)
        if problem:
            shown = note or (body[:80] if isinstance(body, bytes) else body)
            self.violate(f"{problem}: {method} {path} → {response.status_code} {response.text[:160]!r} "
                         f"(body {shown!r}, headers {headers})")
        return response

    def violate(self, text: str) -> None:
        """Note a broken rule (the first 20 in full)."""
        self.violations.append(text if len(self.violations) < 20 else text.split(":", 1)[0])


def _problem(response, expect_reject: bool, expect_status: int | None, code: str | None, names: str | None) -> str | None:
    if response.status_code >= 500:
        return "5xx"
    if expect_status is not None and response.status_code != expect_status:
        return f"not {expect_status}"
    if expect_reject and response.status_code < 400:
        return "accepted"
    try:
        data = response.json()
        if response.status_code >= 400:
            assert isinstance(data["error"]["code"], str) and isinstance(data["error"]["message"], str)
    except Exception:
        return "not a JSON error"
    if code and response.status_code >= 400 and data["error"]["code"] != code:
        return f"the error's code is not {code}"
    if names and response.status_code >= 400 and names not in data["error"]["message"]:
        return f"the error does not name {names}"
    return None


def _chunked(opening: bytes, size: int):
    """A body of `size` bytes sent chunked (no Content-Length), so only the server's own count can stop it."""
    yield opening
    sent = len(opening)
    while sent < size:
        step = min(64 * 1024, size - sent)
        yield b" " * step
        sent += step


def _stripe_header(body: bytes, secret: str, timestamp: int) -> str:
    signature = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def stripe_cases(check: Checker) -> None:
    """Forged, stale, missing and malformed signatures; bodies changed after signing; oversized bodies."""
    valid = payloads.stripe_payment(1).request["body"].encode()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        kind=st.sampled_from(["forged", "stale", "future", "missing", "garbage_header", "tampered", "junk_signed_by_other"]),
        body=junk_bodies, header=header_text, flip=st.integers(min_value=0, max_value=len(valid) - 1),
        age=st.integers(min_value=301, max_value=10**7),
    )
    def case(kind, body, header, flip, age):
        now = int(time.time())
        headers = {"Content-Type": "application/json"}
        if kind == "forged":
            body = valid
            headers["Stripe-Signature"] = _stripe_header(valid, "whsec_forged_" + header, now)
        elif kind == "stale":
            body = valid
            headers["Stripe-Signature"] = _stripe_header(valid, config.STRIPE_SECRET, now - age)
        elif kind == "future":
            body = valid
            headers["Stripe-Signature"] = _stripe_header(valid, config.STRIPE_SECRET, now + age)
        elif kind == "garbage_header":
            headers["Stripe-Signature"] = header
        elif kind == "tampered":
            signed = _stripe_header(valid, config.STRIPE_SECRET, now)
            body = valid[:flip] + bytes([valid[flip] ^ 0x01]) + valid[flip + 1:]
            headers["Stripe-Signature"] = signed
        elif kind == "junk_signed_by_other":
            headers["Stripe-Signature"] = _stripe_header(body, "whsec_other", now)
        check.send("POST", "/webhooks/stripe", body=body, headers=headers)

    case()
    signed = {"Stripe-Signature": _stripe_header(b"x", config.STRIPE_SECRET, int(time.time()))}
    check.send("POST", "/webhooks/stripe", body=b"{" + b" " * OVERSIZE + b"}", headers=signed, expect_status=413)
    check.send("POST", "/webhooks/stripe", body=_chunked(b"{", OVERSIZE), headers=signed, expect_status=413,
               note="1 MiB + 1 byte, chunked")
    # Correctly signed, but not a Stripe event.
    for body in (b"[]", b'{"object": "event"}', b'{"id": "evt_1", "object": "event", "type": "x", "data": []}'):
        check.send("POST", "/webhooks/stripe", body=body,
                   headers={"Stripe-Signature": _stripe_header(body, config.STRIPE_SECRET, int(time.time()))})


def telegram_cases(check: Checker) -> None:
    """Wrong and missing secret tokens (with real payment updates too) and malformed updates with the right one."""
    valid = payloads.telegram_payment(2).request["body"].encode()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(["wrong_secret", "missing_secret", "malformed", "broken_payment"]),
           secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=64),
           body=junk_bodies, value=json_values)
    def case(kind, secret, body, value):
        headers = {"Content-Type": "application/json"}
        if kind == "wrong_secret":
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret if secret != config.TELEGRAM_SECRET else secret + "x"
            body = valid
        elif kind == "missing_secret":
            body = valid
        elif kind == "malformed":
            headers["X-Telegram-Bot-Api-Secret-Token"] = config.TELEGRAM_SECRET
            if body.strip().startswith(b"{"):
                body = b"[" + body + b"]"  # never an object: not an Update
        else:
            # A payment update whose `successful_payment` is not an object: 400 at the door.
            headers["X-Telegram-Bot-Api-Secret-Token"] = config.TELEGRAM_SECRET
            update = json.loads(valid)
            update["message"]["successful_payment"] = value if not isinstance(value, dict) else [value]
            body = json.dumps(update).encode()
        check.send("POST", "/webhooks/telegram", body=body, headers=headers)

    case()
    secret = {"X-Telegram-Bot-Api-Secret-Token": config.TELEGRAM_SECRET}
    check.send("POST", "/webhooks/telegram", body=b"[" + b" " * OVERSIZE + b"]", headers=secret, expect_status=413)
    check.send("POST", "/webhooks/telegram", body=_chunked(b"[", OVERSIZE), headers=secret, expect_status=413,
               note="1 MiB + 1 byte, chunked")


# -- authenticated but malformed -------------------------------------------------------------

MAX_ID = 2**53  # Telegram: ids fit in 53 bits
MAX_TIME = 2**32  # Telegram: Unix times fit in 32 bits
MISSING = object()
RAW = "__raw_json__"  # replaced, after encoding, by JSON text too deep for json.dumps or too long for json.loads

_plain_floats = st.floats(allow_nan=False, allow_infinity=False)
_not_integer = st.one_of(st.none(), st.booleans(), _plain_floats, st.text(max_size=12), st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
_not_text = st.one_of(st.none(), st.booleans(), st.integers(), _plain_floats, st.lists(st.text(max_size=4), max_size=2),
                      st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2))
_not_object = st.one_of(st.none(), st.booleans(), st.integers(), _plain_floats, st.text(max_size=12),
                        st.lists(st.integers(), max_size=2))
_not_boolean = st.one_of(st.none(), st.integers(), _plain_floats, st.text(max_size=5), st.lists(st.booleans(), max_size=2))
SPECIAL_INTEGERS = (-75, -1, 0, True, False, 2**31, 2**53, 2**63, 10**30)


@dataclass(frozen=True)
class Field:
    """A field of a Telegram update that the webhook reads, and what Telegram documents it to be."""

    path: tuple[str, ...]
    kind: str  # "integer", "text", "object" or "boolean"
    required: bool = False
    low: int = 0
    high: int = 0
    max_len: int = 0
    non_empty: bool = False

    @property
    def name(self) -> str:
        """The dotted name the webhook's 400 names it by."""
        return ".".join(self.path)


def _integer(path, low, high, required=True) -> Field:
    return Field(path, "integer", required, low=low, high=high)


def _text(path, max_len, required=False, non_empty=False) -> Field:
    return Field(path, "text", required, max_len=max_len, non_empty=non_empty)


def _user_fields(at: tuple[str, ...]) -> list[Field]:
    return [Field(at, "object", required=True), _integer(at + ("id",), 1, MAX_ID), Field(at + ("is_bot",), "boolean"),
            _text(at + ("first_name",), 256), _text(at + ("last_name",), 256), _text(at + ("username",), 64),
            _text(at + ("language_code",), 16)]


def _money_fields(at: tuple[str, ...], payload_required: bool) -> list[Field]:
    return [_text(at + ("currency",), 16, True, True), _integer(at + ("total_amount",), 1, MAX_ID),
            _text(at + ("invoice_payload",), 128, payload_required),  # 128 bytes; the text drawn is ASCII-or-more
            _text(at + ("telegram_payment_charge_id",), 200, True, True), _text(at + ("provider_payment_charge_id",), 256)]


_UPDATE_ID = _integer(("update_id",), 0, MAX_ID)
_MESSAGE = [Field(("message",), "object"), _integer(("message", "message_id"), 0, MAX_ID),
            _integer(("message", "date"), 0, MAX_TIME), Field(("message", "chat"), "object", required=True),
            _integer(("message", "chat", "id"), 1 - MAX_ID, MAX_ID), _text(("message", "chat", "type"), 32, True, True),
            *_user_fields(("message", "from"))]
_PAID = ("message", "successful_payment")
_REFUND = ("message", "refunded_payment")
_QUERY = ("pre_checkout_query",)
FIELDS = {
    "successful_payment": [_UPDATE_ID, *_MESSAGE, Field(_PAID, "object"), *_money_fields(_PAID, True),
                           _integer(_PAID + ("subscription_expiration_date",), 0, MAX_TIME, required=False),
                           Field(_PAID + ("is_recurring",), "boolean"), Field(_PAID + ("is_first_recurring",), "boolean")],
    "refunded_payment": [_UPDATE_ID, *_MESSAGE, Field(_REFUND, "object"), *_money_fields(_REFUND, False)],
    "command": [_UPDATE_ID, *_MESSAGE, _text(("message", "text"), 2**20)],
    "pre_checkout_query": [_UPDATE_ID, Field(_QUERY, "object"), _text(_QUERY + ("id",), 256, True, True),
                           *_user_fields(_QUERY + ("from",)), *_money_fields(_QUERY, True)[:3]],
}


def wrong_values(field: Field):
    """Values that break what `field` must be: another JSON type, out of range, too long, empty, or absent."""
    if field.kind == "integer":
        options = [_not_integer, st.integers(max_value=field.low - 1), st.integers(min_value=field.high),
                   st.sampled_from([v for v in SPECIAL_INTEGERS if isinstance(v, bool) or not field.low <= v < field.high])]
    elif field.kind == "text":
        options = [_not_text]
        if field.max_len < 4096:
            options.append(st.text(min_size=field.max_len + 1, max_size=field.max_len + 40))
        if field.non_empty:
            options.append(st.just(""))
    elif field.kind == "object":
        options = [_not_object]
    else:
        options = [_not_boolean]
    if field.required:
        options.append(st.just(MISSING))
    return st.one_of(options)


def _base_update(kind: str, user: int) -> dict:
    """A correct update of `kind` from `user`, built with the project's own builders."""
    updates = payloads.telegram_updates()
    payload = payloads.invoice_payload(payloads.TELEGRAM_PLAN, user)
    if kind == "successful_payment":
        return updates.successful_payment_update(user, payload, payloads.STARS_PRICE, updates.new_charge_id())
    if kind == "refunded_payment":
        return updates.refunded_payment_update(user, payload, payloads.STARS_PRICE, updates.new_charge_id())
    if kind == "pre_checkout_query":
        return updates.pre_checkout_query_update(user, payload, payloads.STARS_PRICE)
    return updates.command_update(user, "/start")


def _put(data: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        data = data[key]
    if value is MISSING:
        data.pop(path[-1], None)
    else:
        data[path[-1]] = value


def _encode(data, raw: str = "") -> bytes:
    """`data` as JSON, with the `RAW` placeholder (if any) replaced by `raw`."""
    return json.dumps(data).replace(f'"{RAW}"', raw).encode()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def telegram_field_cases(check: Checker, first_user: int) -> None:
    """With the right secret token: real updates with one field of the wrong type, size or range, nested too deep, or a number too long to parse."""
    secret = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": config.TELEGRAM_SECRET}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(update_kind=st.sampled_from(sorted(FIELDS)), how=st.sampled_from(["wrong"] * 8 + ["deep", "huge_number"]),
           user=st.integers(min_value=0, max_value=999_999), data=st.data())
    def case(update_kind, how, user, data):
        update = _base_update(update_kind, first_user + user)
        field = data.draw(st.sampled_from(FIELDS[update_kind]), label="field")
        names, raw = None, ""
        if how == "wrong":
            _put(update, field.path, data.draw(wrong_values(field), label="value"))
            names = field.name
        else:
            _put(update, field.path, RAW)
            raw = (_nested(data.draw(st.integers(min_value=33, max_value=100_000), label="depth")) if how == "deep"
                   else "1" + "0" * 5000)
        body = _encode(update, raw)
        check.send("POST", "/webhooks/telegram", body=body, headers=secret, expect_status=400, code="malformed_update", names=names,
                   note=f"{update_kind} with {field.name} {how}: {body[:100]!r}")

    case()


STRIPE_SHAPES = {  # how the event is broken → the field the 400 must name (None: the body is not an event at all)
    "long_id": "`id`", "long_type": "`type`", "empty_id": "`id`", "empty_type": "`type`", "id_not_text": "`id`",
    "type_not_text": "`type`", "not_an_event": "`object`", "data_not_object": "`data`", "no_data_object": "`data.object`",
    "not_an_object": None, "deep": None,
}


def _signed(body: bytes) -> dict:
    return payloads.sign_stripe(body)["headers"]


def stripe_shape_cases(check: Checker, first_user: int) -> None:
    """Correctly signed bodies that are not Stripe events: 100 KB or empty `id`/`type`, non-string type, no `data.object`, …"""
    events = payloads.stripe_events()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(how=st.sampled_from(sorted(STRIPE_SHAPES)), user=st.integers(min_value=0, max_value=999_999),
           not_text=_not_text, not_object=_not_object, value=json_values, missing=st.booleans(),
           depth=st.integers(min_value=2_000, max_value=100_000))
    def case(how, user, not_text, not_object, value, missing, depth):
        event = events.event("checkout.session.completed", payloads.paid_checkout_session(first_user + user))
        if how == "long_id":
            event["id"] = "evt_" + "a" * 100_000
        elif how == "long_type":
            event["type"] = "checkout.session.completed" + "x" * 100_000
        elif how in ("empty_id", "empty_type"):
            event[how.split("_")[1]] = ""
        elif how in ("id_not_text", "type_not_text"):
            event[how.split("_")[0]] = not_text
        elif how == "not_an_event":
            event.pop("object") if missing else event.update(object=value if value != "event" else "events")
        elif how == "data_not_object":
            event.pop("data") if missing else event.update(data=not_object)
        elif how == "no_data_object":
            event["data"].pop("object") if missing else event["data"].update(object=not_object)
        elif how == "deep":
            event["data"]["object"]["metadata"] = RAW
        if how == "not_an_object":
            event = value if not isinstance(value, dict) else [value]
        body = _encode(event, _nested(depth))
        check.send("POST", "/webhooks/stripe", body=body, headers=_signed(body), expect_status=400, code="payload_invalid",
                   names=STRIPE_SHAPES[how], note=f"{how}: {body[:100]!r}")

    case()


# -- mismatched payments -------------------------------------------------------------------

DAY = 86400


def _stars_plans() -> dict[str, dict]:
    return {key: plan for key, plan in payloads.plans().items() if "stars" in plan}


def telegram_mismatch_cases(check: Checker, first_user: int) -> None:
    """Authentic `successful_payment` updates for real plans that are not what was invoiced: they must not grant."""
    updates = payloads.telegram_updates()
    plans = _stars_plans()
    by_period = sorted(key for key, plan in plans.items() if "days" in plan)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(how=st.sampled_from(["wrong_amount", "wrong_currency", "other_payer", "beyond_period", "unknown_plan"]),
           plan_key=st.sampled_from(sorted(plans)), period_plan=st.sampled_from(by_period),
           user=st.integers(min_value=0, max_value=999_999), other=st.integers(min_value=1, max_value=999_999),
           amount=st.integers(min_value=1, max_value=MAX_ID - 1),
           currency=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=16),
           beyond=st.integers(min_value=3600, max_value=10**9), renewal=st.booleans(),
           unknown=st.from_regex(r"\A[a-z0-9][a-z0-9_]{0,20}\Z"))
    def case(how, plan_key, period_plan, user, other, amount, currency, beyond, renewal, unknown):
        payer = first_user + user
        plan_key = period_plan if how == "beyond_period" else plan_key
        if how == "unknown_plan":
            plan_key = unknown if unknown not in plans else unknown + "_gone"
        plan = plans.get(plan_key, {"stars": payloads.STARS_PRICE})
        named = first_user + (user + other) % 1_000_000 if how == "other_payer" else payer
        price = plan["stars"] if how != "wrong_amount" else (amount if amount != plan["stars"] else amount + 1)
        now = int(time.time())
        subscription = plan.get("stars_subscription", False)
        expires = now + 30 * DAY if subscription else None
        if how == "beyond_period":
            expires = now + 31 * DAY + beyond  # one 30-day period and a day's leeway, and more
        charge_id = updates.new_charge_id()
        update = updates.successful_payment_update(
            payer, payloads.invoice_payload(plan_key, named), price, charge_id,
            currency=("XTS" if currency == "XTR" else currency) if how == "wrong_currency" else "XTR",
            subscription_expiration_date=expires, is_recurring=subscription and renewal,
            is_first_recurring=subscription and not renewal,
        )
        response = check.send("POST", "/webhooks/telegram", body=json.dumps(update).encode(),
                              headers=payloads.telegram_request(update)["headers"], expect_reject=False, expect_status=200,
                              note=f"{how}: {plan_key} for {named}, paid {price} by {payer}")
        if response.status_code == 200:
            check.recorded.append(("telegram", charge_id, how))

    case()


def _stand_in_session(check: Checker, user: int, plan: str, price: str) -> dict:
    """A one-off Checkout Session created at the Stripe stand-in, naming `user` and `plan` and billing `price`."""
    response = check.http.post(f"{check.stripe_api}/v1/checkout/sessions", timeout=10, headers={"Authorization": f"Bearer {config.STRIPE_KEY}"}, data={
        "mode": "payment", "line_items[0][price]": price, "line_items[0][quantity]": "1",
        "client_reference_id": str(user), "metadata[telegram_user_id]": str(user), "metadata[plan]": plan,
        "success_url": "http://127.0.0.1/checkout/success", "cancel_url": "http://127.0.0.1/app",
    })
    response.raise_for_status()
    return response.json()


def stripe_mismatch_cases(check: Checker, first_user: int) -> None:
    """Signed checkout events for sessions the Stripe stand-in does not know, for plans not sold by card, or live-mode on a test key."""
    events = payloads.stripe_events()
    plans = payloads.plans()
    by_card = sorted(key for key, plan in plans.items() if "stripe_price" in plan)
    not_by_card = sorted(key for key, plan in plans.items() if "stripe_price" not in plan)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(how=st.sampled_from(["unknown_session", "unknown_session_not_by_card", "unknown_plan", "live_mode",
                                "not_sold_by_card", "wrong_price", "unpaid_at_stripe"]),
           plan_key=st.sampled_from(by_card), other_plan=st.sampled_from(not_by_card),
           unknown=st.from_regex(r"\A[a-z0-9][a-z0-9_]{0,20}\Z"), user=st.integers(min_value=0, max_value=999_999),
           type_=st.sampled_from(["checkout.session.completed", "checkout.session.async_payment_succeeded"]))
    def case(how, plan_key, other_plan, unknown, user, type_):
        user += first_user
        if how in ("unknown_session_not_by_card", "not_sold_by_card"):
            plan_key = other_plan
        elif how == "unknown_plan":
            plan_key = unknown if unknown not in plans else unknown + "_gone"
        mode = plans.get(plan_key, {}).get("stripe_mode", "payment")
        if how in ("not_sold_by_card", "wrong_price", "unpaid_at_stripe"):
            # A session Stripe has (open, unpaid), reported by the event as paid.
            price = plans[payloads.STRIPE_PLAN]["stripe_price"] if how != "wrong_price" else "price_not_in_the_catalogue"
            plan_key = payloads.STRIPE_PLAN if how != "not_sold_by_card" else plan_key
            session = dict(_stand_in_session(check, user, plan_key, price), payment_status="paid", status="complete",
                           payment_intent=events.new_id("pi"))
        else:
            session = payloads.paid_checkout_session(user, plan_key, mode)
        event = events.event(type_, session, livemode=how == "live_mode")
        body = json.dumps(event).encode()
        response = check.send("POST", "/webhooks/stripe", body=body, headers=_signed(body), expect_reject=False,
                              expect_status=200, note=f"{how}: {type_} for {plan_key} ({mode})")
        if response.status_code == 200:
            check.recorded.append(("stripe", event["id"], how))

    case()


def _jwt(claims: dict, key: str, alg: str = "HS256") -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signing = f"{head}.{body}".encode()
    sig = b64(hmac.new(key.encode(), signing, hashlib.sha256).digest()) if alg == "HS256" else ""
    return f"{head}.{body}.{sig}"


def session_cases(check: Checker) -> None:
    """Tampered, stale and future initData, junk bodies, bad `tma` headers; forged and expired JWTs on /api/me."""
    from app.telegram.initdata import sign_init_data

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(["tampered", "stale", "future", "other_bot", "no_hash", "junk", "tma_junk"]),
           flip=st.integers(min_value=0, max_value=400), body=junk_bodies, text=header_text,
           age=st.integers(min_value=901, max_value=10**8))
    def case(kind, flip, body, text, age):
        user = {"id": 7_000_000 + flip, "first_name": "Mallory"}
        now = int(time.time())
        headers = {"Content-Type": "application/json"}
        if kind == "tampered":
            raw = sign_init_data(config.BOT_TOKEN, user=user)
            i = flip % len(raw)
            raw = raw[:i] + ("A" if raw[i] != "A" else "B") + raw[i + 1:]
            body = json.dumps({"init_data": raw}).encode()
        elif kind == "stale":
            body = json.dumps({"init_data": sign_init_data(config.BOT_TOKEN, user=user, auth_date=now - age)}).encode()
        elif kind == "future":
            body = json.dumps({"init_data": sign_init_data(config.BOT_TOKEN, user=user, auth_date=now + 61 + age)}).encode()
        elif kind == "other_bot":
            body = json.dumps({"init_data": sign_init_data("7000000002:AAotherbototherbototherbototherbot", user=user)}).encode()
        elif kind == "no_hash":
            raw = sign_init_data(config.BOT_TOKEN, user=user)
            body = json.dumps({"init_data": raw.rsplit("&hash=", 1)[0]}).encode()
        elif kind == "tma_junk":
            headers["Authorization"] = "tma " + text
        check.send("POST", "/api/session", body=body, headers=headers)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(["wrong_key", "expired", "alg_none", "bad_sub", "junk", "refresh_type"]),
           text=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=120),
           sub=st.one_of(st.text(max_size=10), st.integers(), st.none()))
    def me_case(kind, text, sub):
        now = int(time.time())
        claims = {"sub": "1001", "type": "access", "fresh": False, "jti": "x", "iat": now, "nbf": now, "exp": now + 600}
        if kind == "wrong_key":
            token = _jwt(claims, "not-the-secret-" + text)
        elif kind == "expired":
            token = _jwt(dict(claims, exp=now - 10, iat=now - 1000, nbf=now - 1000), config.JWT_SECRET)
        elif kind == "alg_none":
            token = _jwt(claims, "", alg="none")
        elif kind == "bad_sub":
            token = _jwt(dict(claims, sub=sub if sub != "1001" else "x"), config.JWT_SECRET)
        elif kind == "refresh_type":
            token = _jwt(dict(claims, type="refresh"), config.JWT_SECRET)
        else:
            token = text
        check.send("GET", "/api/me", headers={"Authorization": f"Bearer {token}"})

    case()
    me_case()
    check.send("POST", "/api/session", body=b'{"init_data": "' + b"a" * OVERSIZE + b'"}',
               headers={"Content-Type": "application/json"}, expect_status=413)
    check.send("POST", "/api/session", body=_chunked(b'{"init_data": "', OVERSIZE),
               headers={"Content-Type": "application/json"}, expect_status=413, note="1 MiB + 1 byte, chunked")


FIRST_USER = 40_000_000
USERS_PER_FAMILY = 1_000_000
TABLES = ("event", "grant", "user")

# Input the service must refuse at the door: no row may appear.
REJECTED = (
    ("/webhooks/stripe: signatures, junk, size", lambda check, _: stripe_cases(check)),
    ("/webhooks/telegram: secret token, junk, size", lambda check, _: telegram_cases(check)),
    ("/api/session + /api/me", lambda check, _: session_cases(check)),
    ("/webhooks/telegram: right token, a field malformed", telegram_field_cases),
    ("/webhooks/stripe: signed, not an event's shape", stripe_shape_cases),
)
# Authentic reports of payments that are not what was sold: recorded, and never granted.
MISMATCHED = (
    ("/webhooks/telegram: payment not as invoiced", telegram_mismatch_cases),
    ("/webhooks/stripe: checkout not as sold", stripe_mismatch_cases),
)


POISON_FAMILY = "every door and both ledgers: NUL, lone surrogates, non-ASCII digits"
WAYS_FAMILY = "promo codes, gift links, plan names at the Mini App and the bot"


def _rows(stack) -> dict[str, int]:
    return {t: stack.sql(f'SELECT COUNT(*) FROM "{t}"')[0][0] for t in TABLES}


def _created(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: after[t] - before[t] for t in after}


def _family(check: Checker, kind: str, **figures) -> dict:
    return {"kind": kind, "sent": check.sent, "statuses": check.statuses, "violations": check.violations, **figures}


def _outcomes(stack, recorded: list[tuple[str, str, str]]) -> dict[str, dict[str, int]]:
    """For each way the payments were broken, how many of their events stand at each status."""
    how_of = {(provider, external_id): how for provider, external_id, how in recorded}
    outcomes: dict[str, dict[str, int]] = {}
    for provider in sorted({p for p, _, _ in recorded}):
        ids = [external_id for p, external_id, _ in recorded if p == provider]
        for external_id, status in stack.sql('SELECT external_id, status FROM "event" WHERE provider = %s '
                                             "AND external_id = ANY(%s)", (provider, ids)):
            by_status = outcomes.setdefault(how_of[(provider, external_id)], {})
            by_status[status] = by_status.get(status, 0) + 1
    return outcomes


def _sample_errors(stack, recorded: list[tuple[str, str, str]]) -> dict[str, str]:
    """One event's error (or note) for each way the payments were broken."""
    found = {}
    for provider, external_id, how in recorded:
        if how not in found:
            row = stack.sql('SELECT e.error, (SELECT l.detail FROM "event_log" l WHERE l.event_id = e.id ORDER BY l.id DESC '
                            'LIMIT 1) FROM "event" e WHERE e.provider = %s AND e.external_id = %s', (provider, external_id))
            found[how] = str(row[0][0] or row[0][1]) if row else "no row"
    return found


def _total(outcomes: dict[str, dict[str, int]]) -> dict[str, int]:
    statuses: dict[str, int] = {}
    for by_status in outcomes.values():
        for status, n in by_status.items():
            statuses[status] = statuses.get(status, 0) + n
    return statuses


def _drain(stack, recorded: list[tuple[str, str, str]], timeout: float = 120.0) -> dict[str, dict[str, int]]:
    """Wait until the workers have handled every recorded event (none pending), then their outcomes."""
    deadline = time.monotonic() + timeout
    while True:
        outcomes = _outcomes(stack, recorded)
        statuses = _total(outcomes)
        if (not statuses.get("pending") and sum(statuses.values()) >= len(recorded)) or time.monotonic() > deadline:
            return outcomes
        time.sleep(0.5)


def _grants_of_users(stack, first: int, last: int) -> int:
    return stack.sql('SELECT COUNT(*) FROM "grant" g JOIN "user" u ON u.id = g.user_id '
                     "WHERE u.telegram_id >= %s AND u.telegram_id < %s", (first, last))[0][0]


def _users(stack, first: int, last: int) -> int:
    return stack.sql('SELECT COUNT(*) FROM "user" WHERE telegram_id >= %s AND telegram_id < %s', (first, last))[0][0]


def _check_mismatched(check: Checker, statuses: dict[str, int], grants: int) -> None:
    """Every accepted mismatched payment ended failed or ignored, and none of their payers holds a grant."""
    recorded = len(check.recorded)
    ended = statuses.get("failed", 0) + statuses.get("ignored", 0)
    if ended != recorded:
        check.violate(f"of {recorded} recorded events {ended} ended failed or ignored: {statuses}")
    if grants:
        check.violate(f"{grants} grants from mismatched payments")


def run(stack) -> dict:
    """Every bad-input family against the running service; rows, grants and event outcomes counted from the database."""
    stack.reset()
    stack.start_workers("workers.main")
    families: dict[str, dict] = {}
    first_user = FIRST_USER
    start = _rows(stack)
    for name, fn in REJECTED:
        before, check = _rows(stack), Checker(stack.url)
        fn(check, first_user)
        families[name] = _family(check, "rejected", rows_created=_created(before, _rows(stack)))
        first_user += USERS_PER_FAMILY
    time.sleep(2)  # anything wrongly queued would have been processed by now
    rejected_rows = _created(start, _rows(stack))
    for name, fn in MISMATCHED:
        check = Checker(stack.url, stack.urls.get("stripe"))
        fn(check, first_user)
        by_how = _drain(stack, check.recorded)
        statuses = _total(by_how)
        grants = _grants_of_users(stack, first_user, first_user + USERS_PER_FAMILY)
        _check_mismatched(check, statuses, grants)
        families[name] = _family(check, "mismatched", recorded=len(check.recorded), outcomes=statuses, grants=grants,
                                 outcomes_by_kind=by_how, errors=_sample_errors(stack, check.recorded),
                                 users_created=_users(stack, first_user, first_user + USERS_PER_FAMILY))
        first_user += USERS_PER_FAMILY
    grants_total = stack.sql('SELECT COUNT(*) FROM "grant"')[0][0]
    # Text that poisons is last: some of it is a real payment whose grant is right (a name cleaned at the door).
    from bench.chaos import poison  # it builds on this module's Checker

    families[POISON_FAMILY] = poison.run(stack, first_user)
    from bench.chaos import ways

    families[WAYS_FAMILY] = ways.run(stack, first_user + USERS_PER_FAMILY)
    ok = (all(not f["violations"] for f in families.values()) and not any(rejected_rows.values()) and not grants_total)
    return {"families": families, "rows_created": rejected_rows, "grants_total": grants_total, "ok": ok}
