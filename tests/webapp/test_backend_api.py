"""`/api/v1`: the operator's backend checks, grants and revokes with an API key."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from app.models import ApiKey, Grant


@pytest.fixture
def api_key(cli) -> str:
    created = cli("apikeys", "create", "backend-test", "--json")
    assert created.exit_code == 0, created.output
    return json.loads(created.stdout)["key"]


def auth(key: str, scheme: str = "Bearer") -> dict:
    return {"Authorization": f"{scheme} {key}"}


def test_a_key_is_printed_once_and_only_its_hash_is_stored(cli, api_key):
    row = ApiKey.get()
    assert api_key not in (row.key_hash, row.public_id) and len(row.key_hash) == 64
    listing = cli("apikeys", "list", "--json")
    assert api_key not in listing.stdout and api_key.split("_")[-1] not in listing.stdout
    assert json.loads(listing.stdout)[0]["name"] == "backend-test"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ek_nope", "Basic {key}", "Bearer {key}x", "Bearer {key_other_id}"])
def test_a_missing_or_wrong_key_is_401_and_says_nothing_about_which_part(client, api_key, header):
    headers = {}
    if header is not None:
        public_id = api_key.split("_")[1]
        value = header.format(key=api_key, key_other_id=api_key.replace(public_id, "0" * len(public_id)))
        headers = {"Authorization": value}
    response = client.get("/api/v1/users/42/entitlements/premium", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "api_key_invalid"


def test_a_revoked_key_is_refused_at_once(client, cli, api_key):
    assert client.get("/api/v1/users/42/entitlements/premium", headers=auth(api_key)).status_code == 200
    assert cli("apikeys", "revoke", str(ApiKey.get().id)).exit_code == 0
    assert client.get("/api/v1/users/42/entitlements/premium", headers=auth(api_key)).status_code == 401


def test_the_check_of_a_user_never_seen_is_inactive_and_the_user_is_404(client, api_key):
    check = client.get("/api/v1/users/777/entitlements/premium", headers=auth(api_key, "bearer"))
    assert check.status_code == 200
    assert check.get_json() == {"entitlement": "premium", "active": False, "expires_at": None}
    missing = client.get("/api/v1/users/777", headers=auth(api_key))
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "unknown_user"


def test_a_promotional_grant_shows_in_the_check_the_mini_app_and_customer_show(client, cli, api_key, app):
    response = client.post("/api/v1/users/4242/grants", headers=auth(api_key), json={"entitlement": "premium", "days": 10, "reason": "beta tester"})
    assert response.status_code == 201, response.get_json()
    granted = response.get_json()
    assert (granted["user"], granted["entitlement"], granted["source"], granted["active"]) == (4242, "premium", "api", True)

    check = client.get("/api/v1/users/4242/entitlements/premium", headers=auth(api_key)).get_json()
    assert check["active"] is True and check["expires_at"] == granted["expires_at"]
    assert client.get("/api/v1/users/4242", headers=auth(api_key)).get_json()["entitlements"] == [
        {"entitlement": "premium", "active": True, "expires_at": granted["expires_at"]}]

    from flask_jwt_extended import create_access_token

    with app.app_context():
        token = create_access_token(identity="4242")
    me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [e["entitlement"] for e in me["entitlements"]] == ["premium"]

    timeline = json.loads(cli("customer", "show", "4242", "--json").stdout)["timeline"]
    assert [(line["kind"], line["source"]) for line in timeline] == [("grant", "api")]
    assert timeline[0]["detail"]["reason"] == "beta tester"


def test_a_retried_grant_with_the_same_idempotency_key_returns_the_same_grant(client, api_key):
    headers = {**auth(api_key), "Idempotency-Key": "promo-2026-12-01-4242"}
    body = {"entitlement": "premium", "until": (datetime.now(timezone.utc) + timedelta(days=3)).isoformat()}
    first = client.post("/api/v1/users/4242/grants", headers=headers, json=body)
    second = client.post("/api/v1/users/4242/grants", headers=headers, json=body)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json() and second.headers["Idempotent-Replayed"] == "true"
    assert Grant.select().count() == 1

    reused = client.post("/api/v1/users/4242/grants", headers=headers, json={"entitlement": "premium", "days": 99})
    assert reused.status_code == 409 and reused.get_json()["error"]["code"] == "idempotency_key_reused"
    assert Grant.select().count() == 1


def test_revoking_a_grant_answers_it_with_revoked_at_and_the_check_turns_inactive(client, api_key):
    granted = client.post("/api/v1/users/4242/grants", headers=auth(api_key), json={"entitlement": "premium", "days": 1}).get_json()
    revoked = client.delete(f"/api/v1/grants/{granted['id']}", headers=auth(api_key))
    assert revoked.status_code == 200
    assert revoked.get_json()["revoked_at"] is not None and revoked.get_json()["revoke_reason"] == "revoked"
    assert client.get("/api/v1/users/4242/entitlements/premium", headers=auth(api_key)).get_json()["active"] is False
    assert client.delete("/api/v1/grants/999999", headers=auth(api_key)).get_json()["error"]["code"] == "grant_unknown"


@pytest.mark.parametrize(
    "path, body, code",
    [
        ("/api/v1/users/4242/grants", {"entitlement": "premum", "days": 1}, "unknown_entitlement"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium"}, "days_or_until"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium", "days": 1, "until": "2030-01-01T00:00:00Z"}, "days_or_until"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium", "until": "2001-01-01T00:00:00Z"}, "until_in_past"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium", "until": "tomorrow"}, "until_invalid"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium", "days": -3}, "days_invalid"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium", "days": "\u0662"}, "days_invalid"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium", "days": 1, "reason": "beta\x00"}, "reason_invalid"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium", "days": 1, "reason": "\ud800"}, "reason_invalid"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium\x00", "days": 1}, "unknown_entitlement"),
        ("/api/v1/users/4242/grants", {"entitlement": "premium", "days": True}, "days_invalid"),
        ("/api/v1/users/-75/grants", {"entitlement": "premium", "days": 1}, "user_invalid"),
        ("/api/v1/users/0/grants", {"entitlement": "premium", "days": 1}, "user_invalid"),
        ("/api/v1/users/99999999999999999999/grants", {"entitlement": "premium", "days": 1}, "user_invalid"),
    ],
)
def test_bad_grant_requests_get_json_errors_and_change_nothing(client, api_key, path, body, code):
    response = client.post(path, headers=auth(api_key), json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert Grant.select().count() == 0


def test_a_grant_made_through_the_api_reaches_the_operators_webhook_endpoint(client, cli, worker, api_key):
    from tests.support.webhook_receiver import WebhookReceiver, add_endpoint
    from tests.support.waiting import wait_for

    receiver = WebhookReceiver().start()
    try:
        add_endpoint(cli, receiver, "entitlement.started")
        granted = client.post("/api/v1/users/4343/grants", headers=auth(api_key), json={"entitlement": "premium", "days": 3})
        assert granted.status_code == 201

        wait_for(lambda: receiver.accepted, message="the entitlement.started message")
        [message] = receiver.accepted
    finally:
        receiver.stop()
    assert message["type"] == "entitlement.started"
    assert (message["data"]["user"], message["data"]["entitlement"], message["data"]["active"]) == (4343, "premium", True)
    assert message["data"]["expires_at"] == granted.get_json()["expires_at"]


def test_an_idempotency_key_used_for_one_user_is_refused_for_another(client, api_key):
    headers = {**auth(api_key), "Idempotency-Key": "promo-shared"}
    body = {"entitlement": "premium", "days": 7}
    assert client.post("/api/v1/users/5001/grants", headers=headers, json=body).status_code == 201

    other = client.post("/api/v1/users/5002/grants", headers=headers, json=body)

    assert other.status_code == 409 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert client.get("/api/v1/users/5002/entitlements/premium", headers=auth(api_key)).get_json()["active"] is False


@pytest.mark.parametrize("segment", ["²", "①", "١٢", "１２３", "12%00", "%00", "4\u0662"])
def test_a_user_id_that_is_not_ascii_digits_is_400_json(client, api_key, segment):
    for path in (f"/api/v1/users/{segment}", f"/api/v1/users/{segment}/entitlements/premium"):
        response = client.get(path, headers=auth(api_key))
        assert response.status_code == 400, (path, response.data)
        assert response.get_json()["error"]["code"] == "user_invalid"
    granted = client.post(f"/api/v1/users/{segment}/grants", headers=auth(api_key), json={"entitlement": "premium", "days": 1})
    assert granted.status_code == 400 and granted.get_json()["error"]["code"] == "user_invalid"
    assert Grant.select().count() == 0


@pytest.mark.parametrize("segment", ["%00", "prem%00ium", "%ED%A0%80", "Premium", "x" * 65])
def test_an_entitlement_path_that_is_no_key_is_400_json(client, api_key, segment):
    response = client.get(f"/api/v1/users/42/entitlements/{segment}", headers=auth(api_key))
    assert response.status_code == 400, response.data
    assert response.get_json()["error"]["code"] == "entitlement_invalid"


@pytest.mark.parametrize(
    "until, code",
    [
        ("9999-12-31T00:00:00Z", "until_too_late"),
        ("9999-12-31T23:30:00-01:00", "until_invalid"),
        ("0001-01-01T00:30:00+01:00", "until_invalid"),
    ],
)
def test_an_until_beyond_the_bound_or_the_calendar_is_400_and_grants_nothing(client, api_key, until, code):
    response = client.post("/api/v1/users/5002/grants", headers=auth(api_key), json={"entitlement": "premium", "until": until})
    assert response.status_code == 400, response.data
    assert response.get_json()["error"]["code"] == code
    assert Grant.select().count() == 0


def test_the_latest_accepted_until_leaves_the_user_able_to_receive_more_grants(client, cli, api_key):
    latest = (datetime.now(timezone.utc) + timedelta(days=36_499)).isoformat()
    first = client.post("/api/v1/users/5002/grants", headers=auth(api_key), json={"entitlement": "premium", "until": latest})
    assert first.status_code == 201, first.get_json()

    by_days = client.post("/api/v1/users/5002/grants", headers=auth(api_key), json={"entitlement": "premium", "days": 36_500})
    by_cli = cli("entitlements", "grant", "5002", "premium", "--days", "36500")
    again = client.post("/api/v1/users/5002/grants", headers=auth(api_key), json={"entitlement": "premium", "days": 36_500})

    assert by_days.status_code == 201 and again.status_code == 201, (by_days.get_json(), again.get_json())
    assert by_cli.exit_code == 0 and "Traceback" not in by_cli.output, by_cli.output
    check = client.get("/api/v1/users/5002/entitlements/premium", headers=auth(api_key)).get_json()
    assert check["active"] is True and check["expires_at"] <= "9000-01-01T00:00:00Z"


def test_the_cli_refuses_more_days_than_the_api_accepts(cli):
    result = cli("entitlements", "grant", "5002", "premium", "--days", "1e9")

    assert result.exit_code == 2 and "Traceback" not in result.output
    assert Grant.select().count() == 0


def test_a_read_only_key_checks_but_may_not_grant_or_revoke(cli, client, api_key):
    created = cli("apikeys", "create", "dashboard", "--read-only", "--json")
    assert created.exit_code == 0 and json.loads(created.stdout)["read_only"] is True
    reader = json.loads(created.stdout)["key"]
    granted = client.post("/api/v1/users/77/grants", headers=auth(api_key), json={"entitlement": "premium", "days": 1})
    assert granted.status_code == 201

    check = client.get("/api/v1/users/77/entitlements/premium", headers=auth(reader))
    grant = client.post("/api/v1/users/77/grants", headers=auth(reader), json={"entitlement": "premium", "days": 1})
    revoke = client.delete(f"/api/v1/grants/{granted.get_json()['id']}", headers=auth(reader))

    assert check.status_code == 200 and check.get_json()["active"] is True
    for refused in (grant, revoke):
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "api_key_read_only"
    assert Grant.select().count() == 1 and Grant.get().revoked_at is None
    listing = json.loads(cli("apikeys", "list", "--json").stdout)
    assert {row["name"]: row["read_only"] for row in listing} == {"dashboard": True, "backend-test": False}


@pytest.fixture
def limited(env):
    env["API_RATE_LIMIT"] = "5"
    return env


def test_past_the_per_key_rate_the_api_answers_429_with_retry_after_and_other_keys_go_on(limited, cli, app, api_key):
    from webapp import create_app

    import time

    other = json.loads(cli("apikeys", "create", "other", "--json").stdout)["key"]
    if time.time() % 60 > 50:  # the count is per minute: all seven requests fall in one
        time.sleep(61 - time.time() % 60)
    # Two apps stand for two web processes: the count is shared through the database.
    first, second = app.test_client(), create_app(runtime=app.extensions["entitle"]).test_client()
    answers = [(first if n % 2 else second).get("/api/v1/users/42/entitlements/premium", headers=auth(api_key)) for n in range(7)]

    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    refused = answers[-1]
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert first.get("/api/v1/users/42/entitlements/premium", headers=auth(other)).status_code == 200
    assert first.get("/api/v1/users/42/entitlements/premium", headers=auth("ek_wrong")).status_code == 401


def test_apikeys_create_quiet_prints_only_the_key_which_the_api_accepts(cli, client):
    created = cli("apikeys", "create", "backend-prod", "--quiet")

    assert created.exit_code == 0, created.output
    [key] = created.stdout.splitlines()
    assert client.get("/api/v1/users/42/entitlements/premium", headers=auth(key.strip())).status_code == 200
