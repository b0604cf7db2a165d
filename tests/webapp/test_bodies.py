"""Request bodies: JSON nested too deep is a plain 400, and a chunked body over MAX_BODY_BYTES is a 413 everywhere."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
import requests

from app import users
from app.models import Event, User
from app.stripe.signature import sign_payload
from app.telegram.initdata import sign_init_data
from tests.support.stripe import WEBHOOK_SECRET as STRIPE_SECRET
from tests.support.stripe import completed, stripe_env, token_for
from tests.support.telegram import HEADERS as TELEGRAM_HEADERS
from tests.support.telegram import SECRET as TELEGRAM_SECRET
from tests.support.telegram import TOKEN as BOT_TOKEN
from tests.support.telegram import payment_update
from webapp.body import parse_json
from webapp.errors import ApiError

LIMIT = 8192
USER_ID = 42
DEEP = 1000


@pytest.fixture
def env(env, telegram_api, stripe_api):
    """Both providers configured, and a small body limit so an oversized body stays small."""
    env.update(stripe_env(stripe_api))
    env.update(
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=TELEGRAM_SECRET,
        TELEGRAM_API_URL=telegram_api.url,
        MAX_BODY_BYTES=str(LIMIT),
    )
    return env


@pytest.fixture
def signed_in(app):
    """An Authorization header for a Mini App user who exists."""
    users.ensure_user(USER_ID, first_name="Ada")
    return token_for(app, USER_ID)


def deep_bodies() -> dict[str, bytes]:
    """JSON nested about a thousand levels deep, as a whole body and inside an object's value."""
    return {
        "deep-array": b"[" * DEEP + b"]" * DEEP,
        "deep-value": b'{"init_data": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b', "plan": "premium_week"}',
    }


def assert_logged_no_traceback(caplog) -> None:
    problems = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not problems, [r.getMessage() for r in problems]
    assert len([r for r in caplog.records if r.name.startswith("webapp")]) <= 1


# --- JSON nested too deep ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", deep_bodies())
def test_deep_json_to_session_is_400_malformed_json_without_a_traceback(client, caplog, shape):
    response = client.post("/api/session", data=deep_bodies()[shape], content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"
    assert_logged_no_traceback(caplog)
    assert User.select().count() == 0


@pytest.mark.parametrize("path", ["/api/invoice", "/api/checkout"])
@pytest.mark.parametrize("shape", deep_bodies())
def test_deep_json_with_a_session_is_400_malformed_json_without_a_traceback(
    client, signed_in, caplog, telegram_api, stripe_api, path, shape
):
    response = client.post(path, data=deep_bodies()[shape], content_type="application/json", headers=signed_in)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"
    assert_logged_no_traceback(caplog)
    assert telegram_api.calls == [] and stripe_api.calls == []


def test_json_not_deeper_than_the_guard_still_works(client):
    raw = sign_init_data(BOT_TOKEN, user={"id": USER_ID, "first_name": "Ada"})
    body = json.dumps({"init_data": raw, "extra": json.loads("[" * 20 + "]" * 20), "text": "[" * 100})

    response = client.post("/api/session", data=body, content_type="application/json")

    assert response.status_code == 200, response.get_json()


def test_an_unterminated_string_full_of_escapes_is_refused_at_once():
    # The guard once took quadratic time on this (minutes for a few hundred kB); the deadline is a
    # hang check, hundreds of times the time the answer takes, not a benchmark.
    body = b"[" * 40 + b'"\\' * (1024 * 1024 // 2 - 32)
    outcome = []

    def parse():
        try:
            parse_json(body)
        except ApiError as exc:
            outcome.append(exc.code)

    thread = threading.Thread(target=parse, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert outcome == ["malformed_json"], "the depth guard did not answer within 30 s"


# --- Chunked bodies over MAX_BODY_BYTES, over real HTTP ------------------------------------------


def chunked(body: bytes, size: int = 1000):
    """The body as a generator, which `requests` sends with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def telegram_delivery(app, padded_to: int) -> tuple[bytes, dict]:
    """A valid Stars payment update, padded with whitespace to `padded_to` bytes."""
    plan = app.extensions["entitle"].catalogue().get("premium_week")
    body = json.dumps(payment_update(USER_ID, plan)).encode()
    return body.ljust(padded_to), {**TELEGRAM_HEADERS, "Content-Type": "application/json"}


def stripe_delivery(app, padded_to: int, signed_bytes: int) -> tuple[bytes, dict]:
    """A Stripe event padded to `padded_to` bytes, signed over its first `signed_bytes`."""
    body = json.dumps(completed(USER_ID)).encode().ljust(padded_to)
    return body, {"Stripe-Signature": sign_payload(body[:signed_bytes], STRIPE_SECRET), "Content-Type": "application/json"}


def webhook_delivery(app, path: str, *, oversized: bool) -> tuple[bytes, dict]:
    """A webhook body whose first LIMIT bytes are a complete, valid delivery (so a cut body would be accepted)."""
    size = LIMIT + 4000 if oversized else LIMIT
    if path == "/webhooks/telegram":
        return telegram_delivery(app, size)
    return stripe_delivery(app, size, LIMIT)


@pytest.mark.parametrize("path", ["/webhooks/telegram", "/webhooks/stripe"])
def test_a_chunked_webhook_over_the_limit_is_413_and_nothing_is_stored(app, live_server, path):
    body, headers = webhook_delivery(app, path, oversized=True)

    response = requests.post(live_server + path, data=chunked(body), headers=headers, timeout=10)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert Event.select().count() == 0


@pytest.mark.parametrize("path", ["/webhooks/telegram", "/webhooks/stripe"])
def test_a_chunked_webhook_within_the_limit_is_recorded(app, live_server, path):
    body, headers = webhook_delivery(app, path, oversized=False)

    response = requests.post(live_server + path, data=chunked(body), headers=headers, timeout=10)

    assert response.status_code == 200, response.text
    assert Event.select().count() == 1


@pytest.mark.parametrize("path", ["/api/session", "/api/invoice", "/api/checkout", "/api/plans", "/no/such/page"])
def test_a_chunked_body_over_the_limit_is_413_on_every_route(live_server, signed_in, path):
    raw = sign_init_data(BOT_TOKEN, user={"id": USER_ID + 1, "first_name": "Eve"})
    body = json.dumps({"init_data": raw, "plan": "premium_week"}).encode().ljust(LIMIT + 4000)

    response = requests.post(live_server + path, data=chunked(body), headers=signed_in, timeout=10)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert users.find_user(USER_ID + 1) is None


def test_a_broken_chunked_encoding_is_400_json(live_server):
    host, port = live_server.removeprefix("http://").split(":")
    request = (
        "POST /webhooks/telegram HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/json\r\nConnection: close\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    ).format(host=host)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request.encode())
        answer = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (chunk := conn.recv(65536)):
            answer += chunk

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400"
    assert json.loads(body)["error"]["code"] == "malformed_body"
    assert Event.select().count() == 0


def test_deep_json_read_with_flasks_get_json_is_a_400_without_a_traceback(client, caplog):
    # The Telegram webhook reads its body with request.get_json; the app's JSON provider guards that too.
    body = b'{"update_id": 1, "message": ' + b"[" * DEEP + b"]" * DEEP + b"}"

    response = client.post("/webhooks/telegram", data=body, content_type="application/json", headers=TELEGRAM_HEADERS)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"]
    assert_logged_no_traceback(caplog)
    assert Event.select().count() == 0
