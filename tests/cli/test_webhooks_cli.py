"""`entitle webhooks`: endpoints, the secret shown once, the delivery log, redelivery and `test`."""
from __future__ import annotations

import json

import pytest

from app import entitlements, users
from tests.support.webhook_receiver import FAST_WEBHOOKS, PAYMENT_TYPES, add_endpoint


@pytest.fixture
def env(env):
    """The suite's environment with fast webhook retries."""
    return {**env, **FAST_WEBHOOKS}


def test_add_prints_the_secret_once_and_nothing_else_ever_shows_it(cli, receiver):
    human = cli("webhooks", "add", receiver.url, "--event", "payment.succeeded", "--event", "payment.refunded")
    assert human.exit_code == 0, human.output
    secret = human.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and "shown only now" in human.stdout
    endpoint_id = add_endpoint(cli, receiver)
    assert receiver.secret.startswith("whsec_") and receiver.secret != secret

    listed = cli("webhooks", "list", "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [(r["url"], r["events"]) for r in rows] == [(receiver.url, ["payment.refunded", "payment.succeeded"]), (receiver.url, [])]
    user = users.ensure_user(9101)
    entitlements.grant(user, "premium", source="telegram", reference="charge-s1", days=7)
    outputs = [cli("webhooks", "list").stdout, listed.stdout, cli("webhooks", "deliveries").stdout,
               cli("webhooks", "deliveries", "--json").stdout, cli("customer", "show", "9101", "--json").stdout,
               cli("webhooks", "remove", str(endpoint_id), "--json").stdout]
    for output in outputs:
        assert secret not in output and receiver.secret not in output


def test_add_refuses_an_unknown_type_or_a_url_that_is_not_http(cli):
    typo = cli("webhooks", "add", "https://backend.example/hooks", "--event", "payment.succeded")
    assert typo.exit_code == 2 and "unknown event type 'payment.succeded'" in typo.stderr
    assert cli("webhooks", "add", "ftp://backend.example/hooks").exit_code == 2
    assert cli("webhooks", "add", "backend.example/hooks").exit_code == 2
    assert json.loads(cli("webhooks", "list", "--json").stdout) == []


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://backend.example:99999/hooks", "port '99999', which is not a port number"),
        ("http://backend.example:0/hooks", "port '0', which is not a port number"),
        ("https://backend.example:http/hooks", "port 'http', which is not a port number"),
        ("ftp://backend.example/hooks", "scheme 'ftp'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("backend.example/hooks", "no scheme"),
        ("https:///hooks", "no host"),
        ("https://backend.example/ho oks", "spaces or control characters"),
    ],
)
def test_add_refuses_an_invalid_port_or_scheme_naming_why(cli, url, why):
    result = cli("webhooks", "add", url)

    assert result.exit_code == 2
    assert why in result.stderr and "Traceback" not in result.output
    assert cli("webhooks", "list", "--json").stdout.strip() == "[]"


def test_remove_stops_sending_and_an_unknown_id_exits_1(cli, receiver):
    endpoint_id = add_endpoint(cli, receiver, *PAYMENT_TYPES)
    entitlements.grant(users.ensure_user(9102), "premium", source="stripe", reference="pi_rm", days=7)

    removed = cli("webhooks", "remove", str(endpoint_id))
    assert removed.exit_code == 0 and f"removed webhook endpoint {endpoint_id}" in removed.stdout
    assert json.loads(cli("webhooks", "list", "--json").stdout) == []
    [row] = json.loads(cli("webhooks", "deliveries", "--json").stdout)
    assert (row["status"], row["last_error"]) == ("failed", "endpoint removed")
    assert cli("webhooks", "remove", str(endpoint_id)).exit_code == 1
    # Nothing of a removed endpoint goes out again, by id or with --failed.
    again = cli("webhooks", "redeliver", str(row["id"]))
    assert again.exit_code == 1 and "to an endpoint still in use" in again.stderr
    assert "0 failed deliveries queued again" in cli("webhooks", "redeliver", "--failed").stdout
    [after] = json.loads(cli("webhooks", "deliveries", "--json").stdout)
    assert after["status"] == "failed"


def test_deliveries_filter_by_endpoint_and_status(cli, receiver):
    first = add_endpoint(cli, receiver, *PAYMENT_TYPES)
    second = add_endpoint(cli, receiver, "payment.refunded")
    entitlements.grant(users.ensure_user(9103), "premium", source="stripe", reference="pi_d1", days=7)
    entitlements.revoke_payment("stripe", "pi_d1", reason="refund", actor="stripe")

    everything = json.loads(cli("webhooks", "deliveries", "--json").stdout)
    assert [(r["endpoint"], r["type"], r["sequence"], r["status"]) for r in everything] == [
        (second, "payment.refunded", 2, "pending"), (first, "payment.refunded", 2, "pending"), (first, "payment.succeeded", 1, "pending"),
    ]
    assert {r["user"] for r in everything} == {9103}
    only = json.loads(cli("webhooks", "deliveries", "--endpoint", str(second), "--status", "pending", "--json").stdout)
    assert [r["endpoint"] for r in only] == [second]
    assert json.loads(cli("webhooks", "deliveries", "--status", "delivered", "--json").stdout) == []
    assert cli("webhooks", "deliveries", "--status", "sent").exit_code == 2
    human = cli("webhooks", "deliveries")
    assert human.exit_code == 0 and "payment.refunded" in human.stdout


def test_redeliver_needs_ids_or_failed_and_names_unknown_ids(cli, receiver):
    add_endpoint(cli, receiver, *PAYMENT_TYPES)
    entitlements.grant(users.ensure_user(9104), "premium", source="stripe", reference="pi_re", days=7)
    [row] = json.loads(cli("webhooks", "deliveries", "--json").stdout)

    assert cli("webhooks", "redeliver").exit_code == 2
    assert cli("webhooks", "redeliver", str(row["id"]), "--failed").exit_code == 2
    again = cli("webhooks", "redeliver", str(row["id"]), "999999")
    assert again.exit_code == 1
    assert f"delivery {row['id']} queued again" in again.stdout and "no webhook delivery 999999" in again.stderr
    assert json.loads(cli("webhooks", "redeliver", "--failed", "--json").stdout) == {"requeued": 0}


def test_test_sends_a_signed_ping_and_exits_1_when_the_endpoint_fails(cli, receiver):
    endpoint_id = add_endpoint(cli, receiver, "payment.refunded")  # a ping goes whatever the filter

    sent = cli("webhooks", "test", str(endpoint_id))
    assert sent.exit_code == 0, sent.output
    assert "ping delivered" in sent.stdout and "HTTP 200" in sent.stdout
    [ping] = receiver.requests
    assert ping.verified and ping.message["type"] == "ping" and ping.message["data"]["endpoint"] == endpoint_id

    receiver.down = True
    failed = cli("webhooks", "test", str(endpoint_id), "--json")
    assert failed.exit_code == 1
    shown = json.loads(failed.stdout)
    assert (shown["type"], shown["status"], shown["last_status"]) == ("ping", "pending", 500)
    assert "HTTP 500" in failed.stderr and "the workers retry it" in failed.stderr
    assert cli("webhooks", "test", "424242").exit_code == 1


def test_customer_show_lists_the_users_webhook_deliveries(cli, receiver):
    endpoint_id = add_endpoint(cli, receiver, *PAYMENT_TYPES)
    user = users.ensure_user(9105, first_name="Grace")
    entitlements.grant(user, "premium", source="telegram", reference="charge-w1", days=7,
                       detail={"amount": 75, "currency": "XTR"})

    shown = json.loads(cli("customer", "show", "9105", "--json").stdout)
    kinds = [line["kind"] for line in shown["timeline"]]
    assert kinds == ["payment", "webhook"]
    webhook = shown["timeline"][1]
    assert webhook["summary"] == f"webhook payment.succeeded #1 to endpoint {endpoint_id}: pending after 0 attempt(s)"
    assert webhook["detail"]["status"] == "pending" and webhook["reference"].startswith("msg_")
    human = cli("customer", "show", "9105", COLUMNS="200")
    assert "webhook" in human.stdout and "payment.succeeded" in human.stdout
