"""`entitle simulate … --no-deliver` loses a webhook on purpose, and `entitle reconcile` finds the payment and grants it once.

Telegram and Stripe are the sandbox's stand-ins at the wire (what `entitle sandbox` serves); the service
runs over real HTTP at the address the simulation would post to, so a webhook sent by mistake would
land in its inbox; a real Dramatiq worker on Redis runs what reconciliation records.
"""
from __future__ import annotations

import json

import pytest
import requests

from app.models import Event, EventLog, Grant
from simulate.sandbox import Sandbox
from tests.support.waiting import wait_for


@pytest.fixture
def sandbox():
    with Sandbox() as box:
        yield box


@pytest.fixture
def env(env, sandbox):
    env.update(sandbox.environment())
    return env


def grants_of(user_id: int) -> list[Grant]:
    return [g for g in Grant.select().join_from(Grant, Grant.user.rel_model).where(Grant.user.rel_model.telegram_id == user_id)]


def ran(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def rows_of(result) -> dict[str, dict]:
    return {row["external_id"]: row for row in ran(result)["rows"]}


def processed(external_id: str) -> Event:
    def done():
        event = Event.get_or_none(Event.external_id == external_id)
        return event if event is not None and event.status == "processed" else None

    return wait_for(done, message=f"event {external_id} processed")


def test_a_star_payment_not_delivered_is_in_telegrams_ledger_only_and_reconcile_grants_it_once(cli, worker, live_server, sandbox):
    paid = ran(cli("simulate", "telegram", "payment", "--user-id", "61", "--plan", "premium_week", "--no-deliver", "--json",
                   PUBLIC_URL=live_server))
    charge = paid["charge_id"]
    assert (paid["delivered"], paid["sandbox"], paid["event"]) == (False, True, None)

    # Telegram has it: getStarTransactions lists an incoming invoice payment from user 61, its id the charge id.
    token = sandbox.environment()["TELEGRAM_BOT_TOKEN"]
    ledger = requests.get(f"{sandbox.url}/bot{token}/getStarTransactions", timeout=5).json()["result"]["transactions"]
    [transaction] = [t for t in ledger if t["id"] == charge]
    assert transaction["amount"] == paid["stars"] and isinstance(transaction["date"], int)
    assert {k: transaction["source"][k] for k in ("type", "transaction_type")} == {"type": "user", "transaction_type": "invoice_payment"}
    assert transaction["source"]["user"]["id"] == 61 and transaction["source"]["invoice_payload"]
    # The service heard nothing: no inbox row, no grant.
    assert Event.select().count() == 0 and Grant.select().count() == 0

    first = rows_of(cli("reconcile", "telegram", "--json"))
    assert (first[charge]["kind"], first[charge]["action"]) == ("payment", "recorded")
    event = processed(charge)
    assert "reconciliation" in EventLog.get(EventLog.event == event.id, EventLog.action == "received").detail
    [grant] = grants_of(61)
    assert (grant.source, grant.reference, grant.entitlement, grant.revoked_at) == ("telegram", charge, "premium", None)

    second = rows_of(cli("reconcile", "telegram", "--json"))
    assert second[charge]["action"] == "known"
    assert [g.id for g in grants_of(61)] == [grant.id]
    assert Event.select().where(Event.external_id == charge).count() == 1


def test_a_checkout_not_delivered_is_in_stripes_event_list_only_and_reconcile_grants_it_once(cli, worker, live_server, sandbox):
    paid = ran(cli("simulate", "stripe", "checkout", "--user-id", "62", "--plan", "premium_week", "--no-deliver", "--json",
                   PUBLIC_URL=live_server))
    intent, session = paid["payment_intent"], paid["checkout_session"]
    assert paid["delivered"] is False and {e["status"] for e in paid["events"]} == {None}
    completed = next(e["id"] for e in paid["events"] if e["type"] == "checkout.session.completed")

    # Stripe has it: the paid session, and its events in the event list.
    auth = {"Authorization": f"Bearer {sandbox.environment()['STRIPE_SECRET_KEY']}"}
    stored = requests.get(f"{sandbox.url}/v1/checkout/sessions/{session}", headers=auth, timeout=5).json()
    assert (stored["payment_status"], stored["payment_intent"]) == ("paid", intent)
    listed = requests.get(f"{sandbox.url}/v1/events", params={"type": "checkout.session.completed"}, headers=auth, timeout=5).json()
    assert [(e["id"], e["data"]["object"]["id"]) for e in listed["data"]] == [(completed, session)]
    all_listed = requests.get(f"{sandbox.url}/v1/events", headers=auth, timeout=5).json()["data"]
    assert sorted(e["id"] for e in all_listed) == sorted(e["id"] for e in paid["events"])
    # The service heard nothing: no inbox row, no grant.
    assert Event.select().count() == 0 and Grant.select().count() == 0

    first = rows_of(cli("reconcile", "stripe", "--json"))
    assert {k: (v["kind"], v["action"]) for k, v in first.items()} == {completed: ("checkout.session.completed", "recorded")}
    processed(completed)
    [grant] = grants_of(62)
    assert (grant.source, grant.reference, grant.entitlement, grant.revoked_at) == ("stripe", intent, "premium", None)

    second = rows_of(cli("reconcile", "stripe", "--json"))
    assert second[completed]["action"] == "known"
    assert [g.id for g in grants_of(62)] == [grant.id]
    assert Event.select().where(Event.provider == "stripe").count() == 1


def test_a_delivered_checkout_is_in_stripes_event_list_too_and_known_to_reconcile(cli, worker, live_server):
    paid = ran(cli("simulate", "stripe", "checkout", "--user-id", "63", "--plan", "premium_week", "--json", PUBLIC_URL=live_server))
    completed = next(e["id"] for e in paid["events"] if e["type"] == "checkout.session.completed")
    processed(completed)

    rows = rows_of(cli("reconcile", "stripe", "--json"))

    assert {k: v["action"] for k, v in rows.items()} == {completed: "known"}
    assert len(grants_of(63)) == 1


def test_reconcile_says_what_it_queued_for_the_workers(cli, worker, sandbox):
    ran(cli("simulate", "telegram", "payment", "--user-id", "64", "--plan", "premium_week", "--no-deliver", "--json"))

    said = cli("reconcile", "telegram")

    assert said.exit_code == 0, said.output
    text = " ".join(said.stdout.split())
    assert "1 recorded," in text and "user 64): queued for the workers" in text


def test_no_deliver_without_a_sandbox_says_the_payment_would_be_kept_nowhere(cli):
    stars = cli("simulate", "telegram", "payment", "--user-id", "65", "--plan", "premium_week", "--no-deliver",
                TELEGRAM_API_URL="https://api.telegram.org")
    card = cli("simulate", "stripe", "checkout", "--user-id", "65", "--plan", "premium_week", "--no-deliver", STRIPE_API_BASE="")

    assert stars.exit_code == 1 and "--no-deliver needs a sandbox at TELEGRAM_API_URL" in " ".join(stars.stderr.split())
    assert card.exit_code == 1 and "--no-deliver needs a sandbox at STRIPE_API_BASE" in " ".join(card.stderr.split())
    assert Event.select().count() == 0
