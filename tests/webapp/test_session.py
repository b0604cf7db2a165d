"""Mini App sign-in: initData in, a short-lived bearer token out, and every bad token refused."""
from __future__ import annotations

import base64
import dataclasses
import json
import socket
import time
import uuid

import jwt
import pytest
from prometheus_client import REGISTRY

from app import entitlements, users
from app.models import User
from app.telegram.initdata import sign_init_data
from webapp import create_app

TOKEN = "7000000001:AAFakeTestTokenForMiniAppSignIn_0123456789"
USER = {"id": 5550001, "first_name": "Ada", "last_name": "Lovelace", "username": "ada", "language_code": "en", "is_premium": True}
MAX_AGE = 300


@pytest.fixture
def env(env):
    env["TELEGRAM_BOT_TOKEN"] = TOKEN
    env["INITDATA_MAX_AGE"] = str(MAX_AGE)
    return env


def signed(auth_date: float | None = None, user: dict = USER) -> str:
    return sign_init_data(TOKEN, user=user, auth_date=int(auth_date or time.time()), query_id="AAHdF6IQAAAAAN0XohDhrOrc")


def sign_in(client, raw: str):
    return client.post("/api/session", json={"init_data": raw})


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def b64url(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(sub: str, *, expires_in: int = 600) -> dict:
    now = int(time.time())
    return {"fresh": False, "iat": now, "jti": str(uuid.uuid4()), "type": "access", "sub": sub, "nbf": now, "exp": now + expires_in}


# --- Signing in ----------------------------------------------------------------------------


def test_fresh_init_data_gives_a_token_for_the_user(client, settings):
    response = sign_in(client, signed())

    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["user"] == {**USER, "stripe_customer": False}
    assert body["entitlements"] == []
    payload = jwt.decode(body["access_token"], settings.jwt_secret_key, algorithms=["HS256"])
    assert payload["sub"] == str(USER["id"])
    assert payload["exp"] - payload["iat"] == 15 * 60


def test_sign_in_creates_then_updates_the_user(client):
    sign_in(client, signed())
    sign_in(client, signed(user={**USER, "username": "countess", "is_premium": False}))

    user = users.find_user(USER["id"])
    assert (user.first_name, user.username, user.is_premium) == ("Ada", "countess", False)


def test_a_last_name_or_username_a_newer_sign_in_leaves_out_is_cleared_and_the_language_kept(client, cli):
    sign_in(client, signed())
    # Telegram leaves optional fields out when the user has none (the user removed their last name and username).
    newer = {key: value for key, value in USER.items() if key not in ("last_name", "username", "language_code")}

    body = sign_in(client, signed(user=newer)).get_json()

    assert body["user"] == {**USER, "last_name": None, "username": None, "stripe_customer": False}
    user = users.find_user(USER["id"])
    assert (user.first_name, user.last_name, user.username, user.language_code) == ("Ada", None, None, "en")
    assert users.user_to_dict(user) == {key: value for key, value in body["user"].items() if key != "stripe_customer"}

    # Sources that never carry a profile (an operator's grant here; a card payment, the backend API) leave it alone.
    sign_in(client, signed())
    assert cli("entitlements", "grant", str(USER["id"]), "premium").exit_code == 0
    user = users.find_user(USER["id"])
    assert (user.last_name, user.username) == ("Lovelace", "ada")


def test_a_signed_name_with_nul_or_a_lone_surrogate_signs_in_with_the_name_cleaned(client):
    from urllib.parse import urlencode

    from app.telegram.initdata import expected_hash

    # The user's JSON as a client may write it: the NUL and the lone surrogate as \u escapes.
    user = json.dumps({**USER, "first_name": "A\x00da\ud800", "username": "ada\x00"}, separators=(",", ":"))
    fields = {"auth_date": str(int(time.time())), "user": user}
    response = sign_in(client, urlencode({**fields, "hash": expected_hash(fields, TOKEN)}))

    assert response.status_code == 200, response.get_data(as_text=True)
    user = users.find_user(USER["id"])
    assert (user.first_name, user.username) == ("Ada\ufffd", "ada")


@pytest.mark.parametrize("tail", ["\x00", "\ud800", "\u0662"])
def test_init_data_with_nul_a_lone_surrogate_or_other_digits_is_a_json_400(client, tail):
    response = sign_in(client, signed() + tail)

    assert response.status_code == 401 and response.get_json()["error"]["code"] == "hash_mismatch"
    assert User.select().count() == 0


def test_the_tma_authorization_header_works_too(client):
    response = client.post("/api/session", headers={"Authorization": f"tma {signed()}"})

    assert response.status_code == 200
    assert response.get_json()["user"]["id"] == USER["id"]


def one_byte_changed(raw: str) -> str:
    # Claim to be someone else: the id in the user JSON changes, the hash does not.
    forged = raw.replace(f"%3A{USER['id']}%2C", f"%3A{USER['id'] + 1}%2C", 1)
    assert forged != raw and len(forged) == len(raw)
    return forged


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: one_byte_changed(signed()), "hash_mismatch"),
        (lambda: signed(auth_date=time.time() - MAX_AGE - 60), "expired"),
        (lambda: signed(auth_date=time.time() + 3600), "from_future"),
        (lambda: signed().rsplit("&hash=", 1)[0], "hash_missing"),
        (lambda: "this is not a query string", "malformed"),
    ],
    ids=["one-byte-changed", "older-than-INITDATA_MAX_AGE", "from-the-future", "no-hash", "garbage"],
)
def test_bad_init_data_is_refused_with_its_reason(client, make, reason):
    response = sign_in(client, make())

    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == reason and error["message"]
    assert users.find_user(USER["id"]) is None


def test_init_data_signed_with_another_bot_is_refused(client):
    raw = sign_init_data("7000000002:AAAnotherBotsTokenEntirely_abcdefghijk", user=USER)

    response = client.post("/api/session", headers={"Authorization": f"tma {raw}"})

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "hash_mismatch"


def test_a_refused_sign_in_logs_the_technical_reason_for_the_operator(client, caplog):
    raw = sign_init_data("7000000002:AAAnotherBotsTokenEntirely_abcdefghijk", user=USER)

    assert sign_in(client, raw).status_code == 401

    [line] = [r.getMessage() for r in caplog.records if r.name == "webapp.session"]
    assert f"user {USER['id']} (unverified)" in line and "hash_mismatch" in line
    assert "TELEGRAM_BOT_TOKEN is not the token of the bot that opened the app" in line
    assert "entitle initdata debug" in line
    # Never the initData itself (its hash is a credential while it is fresh).
    assert raw not in line and raw.rsplit("hash=", 1)[1] not in line


def test_a_stale_sign_in_logs_why_and_the_unreadable_one_too(client, caplog):
    assert sign_in(client, signed(auth_date=time.time() - MAX_AGE - 60)).status_code == 401
    assert sign_in(client, "garbage").status_code == 401

    lines = [r.getMessage() for r in caplog.records if r.name == "webapp.session"]
    assert "expired" in lines[0] and "INITDATA_MAX_AGE" in lines[0]
    assert "an unreadable initData" in lines[1]


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"data": b"{not json", "content_type": "application/json"}, "malformed_json"),
        ({"data": b'["init_data"]', "content_type": "application/json"}, "malformed_json"),
        ({"json": {}}, "init_data_missing"),
        ({"json": {"init_data": 42}}, "init_data_missing"),
        ({"json": {"init_data": ""}}, "init_data_missing"),
        ({}, "init_data_missing"),
        ({"headers": {"Authorization": "tma "}}, "init_data_missing"),
    ],
    ids=["broken-json", "not-an-object", "no-init_data", "not-a-string", "empty", "no-body", "empty-tma-header"],
)
def test_a_malformed_request_is_400_json(client, kwargs, code):
    response = client.post("/api/session", **kwargs)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code


def test_without_a_bot_token_sign_in_is_503(app, settings):
    unconfigured = create_app(dataclasses.replace(settings, telegram_bot_token=None))

    response = unconfigured.test_client().post("/api/session", json={"init_data": signed()})

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "telegram_not_configured"


def test_sessions_latency_and_failures_are_counted(client):
    sessions = sample("miniapp_sessions_total")
    exchanges = sample("miniapp_exchange_latency_seconds_count")
    mismatches = sample("miniapp_session_failures_total", reason="hash_mismatch")
    expired = sample("miniapp_session_failures_total", reason="expired")

    sign_in(client, signed())
    sign_in(client, one_byte_changed(signed()))
    sign_in(client, signed(auth_date=time.time() - 10 * MAX_AGE))

    assert sample("miniapp_sessions_total") == sessions + 1
    assert sample("miniapp_exchange_latency_seconds_count") == exchanges + 3
    assert sample("miniapp_session_failures_total", reason="hash_mismatch") == mismatches + 1
    assert sample("miniapp_session_failures_total", reason="expired") == expired + 1
    text = client.get("/metrics").get_data(as_text=True)
    assert f'miniapp_session_failures_total{{host="{socket.gethostname()}",reason="hash_mismatch"}}' in text


# --- Using the token -----------------------------------------------------------------------


def test_me_shows_the_user_and_what_they_hold(client):
    token = sign_in(client, signed()).get_json()["access_token"]
    entitlements.grant(users.find_user(USER["id"]), "premium", source="manual", reference="test-grant", days=30)

    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["id"] == USER["id"] and body["user"]["first_name"] == "Ada"
    [held] = body["entitlements"]
    assert held["entitlement"] == "premium" and held["active"] is True and held["expires_at"].endswith("Z")


def test_sign_in_answers_what_the_user_already_holds(client):
    user = users.ensure_user(USER["id"], first_name="Ada")
    entitlements.grant(user, "supporter", source="manual", reference="lifetime-grant")

    body = sign_in(client, signed()).get_json()

    assert body["entitlements"] == [{"entitlement": "supporter", "active": True, "expires_at": None}]


def test_session_and_me_say_whether_the_user_has_a_stripe_customer(client):
    token = sign_in(client, signed()).get_json()["access_token"]

    def me() -> dict:
        return client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).get_json()["user"]

    assert me()["stripe_customer"] is False

    User.update(stripe_customer_id="cus_test_session").where(User.telegram_id == USER["id"]).execute()

    assert me()["stripe_customer"] is True
    assert sign_in(client, signed()).get_json()["user"]["stripe_customer"] is True


def forged_tokens(good: str, secret: str) -> dict[str, str]:
    header, payload, signature = good.split(".")
    sub = json.loads(base64.urlsafe_b64decode(payload + "=="))["sub"]
    other = str(int(sub) + 1)
    return {
        "payload-edited": f"{header}.{b64url({**claims(sub), 'sub': other})}.{signature}",
        "signature-flipped": f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",
        "another-key": jwt.encode(claims(sub), "some-other-secret-that-is-long-enough-too", algorithm="HS256"),
        "alg-none": f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims(other))}.",
        "alg-none-uppercase": f"{b64url({'alg': 'NONE', 'typ': 'JWT'})}.{b64url(claims(other))}.",
        "hs512-with-our-key": jwt.encode(claims(other), secret, algorithm="HS512"),
        "not-a-jwt": "definitely.not.ajwt",
    }


# The test secret is shorter than HS512 would want; the forged token only has to be refused.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(
    "kind",
    ["payload-edited", "signature-flipped", "another-key", "alg-none", "alg-none-uppercase", "hs512-with-our-key", "not-a-jwt"],
)
def test_a_forged_token_is_401_json(client, settings, kind):
    good = sign_in(client, signed()).get_json()["access_token"]
    token = forged_tokens(good, settings.jwt_secret_key)[kind]

    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_invalid"


def test_an_expired_token_is_401_json(client, settings):
    sign_in(client, signed())
    token = jwt.encode(claims(str(USER["id"]), expires_in=-60), settings.jwt_secret_key, algorithm="HS256")

    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_expired"


def test_me_without_a_token_is_401_json(client):
    response = client.get("/api/me")

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_missing"


def test_a_valid_token_for_a_user_that_is_gone_is_401(client, settings):
    token = jwt.encode(claims("999000999"), settings.jwt_secret_key, algorithm="HS256")

    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "user_unknown"


# --- The page ------------------------------------------------------------------------------


def test_the_mini_app_page_is_served(client):
    response = client.get("/app")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "https://telegram.org/js/telegram-web-app.js" in page
    assert "/static/app.js" in page and "/static/app.css" in page
    assert "script-src 'self' https://telegram.org" in response.headers["Content-Security-Policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200


@pytest.mark.parametrize("user_id", [2**63, 0, -5])
def test_a_signed_user_id_out_of_range_is_401_user_invalid(client, user_id):
    response = sign_in(client, signed(user={"id": user_id, "first_name": "Big"}))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "user_invalid"


# --- Development secret, token shape, scheme case, unknown users on /api/invoice -----------


def development_app(env: dict):
    """A fresh app as a new process (a gunicorn worker, a restart) builds it, with no JWT_SECRET_KEY."""
    from app.config import load_settings

    environ = {k: v for k, v in env.items() if k != "JWT_SECRET_KEY"}
    environ["ENTITLE_ENV"] = "development"
    return create_app(load_settings(environ=environ, env_file="/nonexistent/.env")).test_client()


def test_without_a_jwt_secret_every_app_and_restart_shares_one_kept_beside_the_database(env, database, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)  # on PostgreSQL the secret is kept in the working directory
    first, second = development_app(env), development_app(env)
    token = sign_in(first, signed()).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}

    assert second.get("/api/me", headers=bearer).status_code == 200
    assert first.get("/api/me", headers=bearer).status_code == 200
    del first, second
    after_restart = development_app(env)
    assert after_restart.get("/api/me", headers=bearer).status_code == 200

    kept = tmp_path / ".entitle-jwt-secret"
    assert (kept.stat().st_mode & 0o777) == 0o600
    secret = kept.read_text().strip()
    assert jwt.decode(token, secret, algorithms=["HS256"])["sub"] == str(USER["id"])
    assert str(kept) in caplog.text and secret not in caplog.text


def test_a_token_without_an_expiry_is_401(client, settings):
    sign_in(client, signed())
    payload = {k: v for k, v in claims(str(USER["id"])).items() if k != "exp"}
    token = jwt.encode(payload, settings.jwt_secret_key, algorithm="HS256")

    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_invalid"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_matched_without_regard_to_case(client, scheme):
    token = sign_in(client, signed()).get_json()["access_token"]

    response = client.get("/api/me", headers={"Authorization": f"{scheme} {token}"})

    assert response.status_code == 200
    assert response.get_json()["user"]["id"] == USER["id"]


def test_an_invoice_for_a_user_the_service_does_not_know_is_401(app, settings, telegram_api):
    wired = create_app(dataclasses.replace(settings, telegram_api_url=telegram_api.url)).test_client()
    token = jwt.encode(claims("999000999"), settings.jwt_secret_key, algorithm="HS256")
    bearer = {"Authorization": f"Bearer {token}"}

    response = wired.post("/api/invoice", json={"plan": "premium_week"}, headers=bearer)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "user_unknown"
    assert telegram_api.calls_to("createInvoiceLink") == []
    users.ensure_user(999000999, first_name="Known")  # the same request for a known user goes through
    assert wired.post("/api/invoice", json={"plan": "premium_week"}, headers=bearer).status_code == 200
    assert len(telegram_api.calls_to("createInvoiceLink")) == 1
