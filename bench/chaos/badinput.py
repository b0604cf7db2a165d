"""Bad input against the live service: generated bodies and headers (hypothesis) for the three public endpoints.

Forged and stale Stripe signatures, bodies changed after signing, wrong or missing Telegram secret
tokens, malformed updates, tampered, stale and future initData, forged and expired JWTs, oversized
and non-UTF-8 bodies. Every answer must be a JSON error below 500, and no row may appear.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

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

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()
        self.sent = 0
        self.statuses: dict[str, int] = {}
        self.violations: list[str] = []

    def send(self, method: str, path: str, *, body: bytes = b"", headers: dict | None = None, expect_reject: bool = True):
        """One request; a 5xx, an accepted bad request or a non-JSON rejection is a violation."""
        response = self.http.request(method, self.url + path, data=body, headers=headers or {}, timeout=30)
        self.sent += 1
        self.statuses[str(response.status_code)] = self.statuses.get(str(response.status_code), 0) + 1
        problem = None
        if response.status_code >= 500:
            problem = "5xx"
        elif expect_reject and response.status_code < 400:
            problem = "accepted"
        else:
            try:
                data = response.json()
                if response.status_code >= 400:
                    assert isinstance(data["error"]["code"], str) and isinstance(data["error"]["message"], str)
            except Exception:
                problem = "not a JSON error"
        if problem and len(self.violations) < 20:
            self.violations.append(f"{problem}: {method} {path} → {response.status_code} {response.text[:120]!r} "
                                   f"(body {body[:80]!r}, headers {headers})")
        elif problem:
            self.violations.append(problem)


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
    check.send("POST", "/webhooks/stripe", body=b"{" + b" " * OVERSIZE + b"}",
               headers={"Stripe-Signature": _stripe_header(b"x", config.STRIPE_SECRET, int(time.time()))})
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
            # A payment update whose required parts have the wrong types.
            headers["X-Telegram-Bot-Api-Secret-Token"] = config.TELEGRAM_SECRET
            update = json.loads(valid)
            update["message"]["successful_payment"] = value if not isinstance(value, dict) else [value]
            body = json.dumps(update).encode()
        # A well-formed Update without a usable payment is answered 200 "ignored" (Telegram would
        # otherwise redeliver it); it must still create nothing.
        check.send("POST", "/webhooks/telegram", body=body, headers=headers, expect_reject=kind != "broken_payment")

    case()
    check.send("POST", "/webhooks/telegram", body=b"[" + b" " * OVERSIZE + b"]",
               headers={"X-Telegram-Bot-Api-Secret-Token": config.TELEGRAM_SECRET})


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
               headers={"Content-Type": "application/json"})


def run(stack) -> dict:
    """Every bad-input family against the running service; counts rows before and after."""
    stack.reset()
    stack.start_workers("workers.main")
    counts = lambda: {t: stack.sql(f'SELECT COUNT(*) FROM "{t}"')[0][0] for t in ("event", "grant", "user")}  # noqa: E731
    before = counts()
    families = {}
    for name, fn in (("/webhooks/stripe", stripe_cases), ("/webhooks/telegram", telegram_cases), ("/api/session + /api/me", session_cases)):
        check = Checker(stack.url)
        fn(check)
        families[name] = {"sent": check.sent, "statuses": check.statuses, "violations": check.violations}
    time.sleep(2)  # anything wrongly queued would have been processed by now
    after = counts()
    created = {t: after[t] - before[t] for t in after}
    ok = all(not f["violations"] for f in families.values()) and not any(created.values())
    return {"families": families, "rows_created": created, "ok": ok}
