"""`GET /openapi.json`: a valid OpenAPI 3.1 description of every route, which the live service keeps to."""
from __future__ import annotations

import json

import requests

import pytest
import schemathesis
from apispec_webframeworks.flask import FlaskPlugin
from flask import Flask
from hypothesis import HealthCheck, settings
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.checks import not_a_server_error

from tests.support.stripe import stripe_env, token_for
from tests.support.telegram import SECRET as TELEGRAM_SECRET
from tests.support.telegram import TOKEN as TELEGRAM_TOKEN
from webapp import blueprints
from webapp.openapi import UNDESCRIBED_ENDPOINTS, build_description

METRICS_TOKEN = "metrics-token-for-the-openapi-tests"
SIGNED_IN_USER = 42  # the example id in the description
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ERROR = {"$ref": "#/components/schemas/Error"}
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}

# Schemathesis's own strategies draw from `random`; nothing this suite controls.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@pytest.fixture
def env(env, telegram_api, stripe_api):
    """The suite's environment with Telegram and Stripe pointed at their stand-ins, and a metrics token."""
    env.update(stripe_env(stripe_api))
    env.update(
        TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=TELEGRAM_SECRET,
        TELEGRAM_API_URL=telegram_api.url,
        METRICS_TOKEN=METRICS_TOKEN,
    )
    return env


def described_rules(app):
    """The app's rules that the description must cover."""
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint not in UNDESCRIBED_ENDPOINTS]


def undescribed(app, description: dict) -> list[tuple[str, str]]:
    """Each (method, path) the app routes that the description has no operation for."""
    missing = []
    for rule in described_rules(app):
        path = FlaskPlugin.flaskpath2openapi(rule.rule)
        operations = description["paths"].get(path, {})
        missing += [(method, path) for method in sorted(rule.methods & HTTP_METHODS) if method.lower() not in operations]
    return missing


def test_the_description_is_valid_openapi_3_1(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    errors = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_every_route_and_method_is_described_and_nothing_else(app, client):
    document = client.get("/openapi.json").get_json()
    assert undescribed(app, document) == []
    routed = {FlaskPlugin.flaskpath2openapi(rule.rule) for rule in described_rules(app)}
    assert set(document["paths"]) == routed
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("responses"), f"{method.upper()} {path} describes no response"


def test_a_route_added_without_a_description_is_caught(runtime, database):
    from webapp import create_app

    app = create_app(runtime=runtime)

    @app.post("/api/extra/<int:n>")
    def extra(n: int):
        """No operation described."""
        return {"n": n}

    assert undescribed(app, build_description(app)) == [("POST", "/api/extra/{n}")]


def test_every_error_is_described_with_the_error_shape(client):
    document = client.get("/openapi.json").get_json()
    shared = document["components"]["responses"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                response = shared[response["$ref"].rsplit("/", 1)[1]] if "$ref" in response else response
                schema = response["content"]["application/json"]["schema"]
                assert ERROR in (schema, *schema.get("allOf", ())), f"{method.upper()} {path} {status}"


@pytest.fixture
def credentials(app, cli) -> dict[str, dict]:
    """Valid credentials for each security scheme the description names."""
    created = cli("apikeys", "create", "openapi-test", "--json")
    assert created.exit_code == 0, created.output
    from app.users import ensure_user

    with app.app_context():
        ensure_user(SIGNED_IN_USER, first_name="Ann")
    return {
        "sessionToken": token_for(app, SIGNED_IN_USER),
        "apiKey": {"Authorization": f"Bearer {json.loads(created.stdout)['key']}"},
        "metricsToken": {"Authorization": f"Bearer {METRICS_TOKEN}"},
        "telegramSecret": {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
    }


def routes_only_app() -> Flask:
    """Every route of the service on an app without a runtime: enough to describe them when tests are collected."""
    app = Flask("webapp")
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    return app


# Schemathesis makes one test per operation when this module is collected, before any server runs;
# the live service is then shown to serve this very description.
DESCRIPTION = build_description(routes_only_app())
schema = schemathesis.openapi.from_dict(
    DESCRIPTION,
    config=SchemathesisConfig.from_dict(
        {"seed": 13, "generation": {"max-examples": 20, "no-shrink": True, "deterministic": True, "database": "none"}}
    ),
)


def test_the_live_service_serves_the_description_tested(client):
    assert client.get("/openapi.json").get_json() == DESCRIPTION


@schema.parametrize()
# One served app per operation, shared by its examples (each example stands alone, so sharing is sound).
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_answers_as_described(case, live_server, credentials, worker):
    headers = {}
    for requirement in case.operation.definition.raw.get("security", []):
        for scheme in requirement:
            headers.update(credentials.get(scheme, {}))
    case.call_and_validate(base_url=live_server, headers=headers, checks=CHECKS)


@pytest.mark.parametrize("grant_id", [2**31, 2**63 - 1, 2**63, 10**30])
def test_revoking_a_grant_id_beyond_any_row_is_404_not_a_server_error(client, credentials, grant_id):
    response = client.delete(f"/api/v1/grants/{grant_id}", headers=credentials["apiKey"])
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "grant_unknown"


def conforms(response, method: str, path: str, checks=CHECKS, **case) -> None:
    """Check a response from the live service by the same checks as the schemathesis run, for the request described."""
    schema[path][method].Case(**case).validate_response(response, checks=checks)


def test_signing_in_answers_as_described(live_server, credentials, env):
    from app.telegram.initdata import sign_init_data

    init_data = sign_init_data(TELEGRAM_TOKEN, user={"id": SIGNED_IN_USER, "first_name": "Ann"})
    by_body = requests.post(f"{live_server}/api/session", json={"init_data": init_data}, timeout=10)
    by_header = requests.post(f"{live_server}/api/session", headers={"Authorization": f"tma {init_data}"}, timeout=10)
    for response in (by_body, by_header):
        assert response.status_code == 200, response.text
        conforms(response, "POST", "/api/session", body={"init_data": init_data})


def test_telegram_updates_answer_as_described(live_server, credentials, app):
    from app.telegram import payments
    from simulate import telegram_updates as updates
    from webapp.context import catalogue

    with app.app_context():
        plan = next(plan for plan in catalogue() if plan.sold_for_stars)
    payload = payments.encode_payload(plan.key, SIGNED_IN_USER)
    answers = {
        "pre_checkout": updates.pre_checkout_query_update(SIGNED_IN_USER, payload, plan.stars),
        "payment": updates.successful_payment_update(SIGNED_IN_USER, payload, plan.stars, updates.new_charge_id()),
        "command": updates.command_update(SIGNED_IN_USER, "/status"),
    }
    for name, update in answers.items():
        response = requests.post(f"{live_server}/webhooks/telegram", json=update, headers=credentials["telegramSecret"], timeout=10)
        assert response.status_code == 200, (name, response.text)
        conforms(response, "POST", "/webhooks/telegram", body=update, headers=credentials["telegramSecret"])
    assert requests.post(f"{live_server}/webhooks/telegram", json=answers["pre_checkout"], headers=credentials["telegramSecret"],
                         timeout=10).json()["method"] == "answerPreCheckoutQuery"


def test_a_signed_stripe_event_answers_as_described(live_server, stripe_api):
    from tests.support.stripe import completed, signed

    body, headers = signed(completed(SIGNED_IN_USER, stripe_api=stripe_api))
    response = requests.post(f"{live_server}/webhooks/stripe", data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    conforms(response, "POST", "/webhooks/stripe", body=json.loads(body), headers=headers)


def test_buying_by_card_answers_as_described(live_server, credentials, stripe_api):
    signed_in = credentials["sessionToken"]
    checkout = requests.post(f"{live_server}/api/checkout", json={"plan": "premium_week"}, headers=signed_in, timeout=10)
    assert checkout.status_code == 200, checkout.text
    conforms(checkout, "POST", "/api/checkout", body={"plan": "premium_week"}, headers=signed_in)
    session = stripe_api.set_checkout_session(checkout.json()["id"], payment_status="paid")
    page = requests.get(f"{live_server}/checkout/success", params={"session_id": session["id"]}, timeout=10)
    assert page.status_code == 200 and "Payment received" in page.text
    conforms(page, "GET", "/checkout/success", query={"session_id": session["id"]})
    portal = requests.post(f"{live_server}/api/portal", headers=signed_in, timeout=10)
    assert portal.status_code == 200, portal.text
    conforms(portal, "POST", "/api/portal", headers=signed_in)
    me = requests.get(f"{live_server}/api/me", headers=signed_in, timeout=10)
    assert me.json()["user"]["stripe_customer"] is True and me.json()["entitlements"][0]["active"] is True
    conforms(me, "GET", "/api/me", headers=signed_in)


def test_granting_and_revoking_answer_as_described(live_server, credentials):
    key = {**credentials["apiKey"], "Idempotency-Key": "openapi-1"}
    body = {"entitlement": "premium", "days": 7}
    grants = f"{live_server}/api/v1/users/{SIGNED_IN_USER}/grants"
    first, retry = (requests.post(grants, json=body, headers=key, timeout=10) for _ in range(2))
    assert (first.status_code, retry.status_code) == (201, 201) and retry.headers["Idempotent-Replayed"] == "true"
    for response in (first, retry):
        conforms(response, "POST", "/api/v1/users/{telegram_id}/grants", body=body, headers=key,
                 path_parameters={"telegram_id": SIGNED_IN_USER})
    user = requests.get(f"{live_server}/api/v1/users/{SIGNED_IN_USER}", headers=key, timeout=10)
    assert user.status_code == 200 and user.json()["entitlements"][0]["entitlement"] == "premium"
    conforms(user, "GET", "/api/v1/users/{telegram_id}", headers=key, path_parameters={"telegram_id": SIGNED_IN_USER})
    revoked = requests.delete(f"{live_server}/api/v1/grants/{first.json()['id']}", headers=key, timeout=10)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    conforms(revoked, "DELETE", "/api/v1/grants/{grant_id}", headers=key, path_parameters={"grant_id": first.json()["id"]})


def test_health_without_a_worker_answers_503_as_described(live_server):
    response = requests.get(f"{live_server}/healthz", timeout=10)
    assert response.status_code == 503 and response.json()["error"]["code"] == "unhealthy"
    # A 503 is this route's documented answer when something is down: every check but "no server error".
    conforms(response, "GET", "/healthz", checks=[check for check in CHECKS if check is not not_a_server_error])
