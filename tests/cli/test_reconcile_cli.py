"""`entitle reconcile telegram|stripe`: what the webhooks missed is found in the providers' ledgers and granted once.

Telegram and Stripe are the stand-ins at the wire, keeping ledgers of what the tests say happened;
the webhook is down (a wrong secret), a real Dramatiq worker on Redis processes what is recorded.
"""
from __future__ import annotations

import json

import pytest

from app.models import Event, EventLog, Grant, LedgerEntry, ReconcileState
from app.plans import Catalogue
from simulate import stripe_events as events
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.support import stripe as stripe_helpers
from tests.support.metrics import metric
from tests.support.telegram import HEADERS, PUBLIC_URL, SECRET, TOKEN, post_update
from tests.support.waiting import wait_for

WRONG = {"X-Telegram-Bot-Api-Secret-Token": "a-secret-from-before-the-redeploy"}


@pytest.fixture
def env(env, telegram_api, stripe_api):
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET=SECRET, TELEGRAM_API_URL=telegram_api.url,
        **stripe_helpers.stripe_env(stripe_api),
    )
    env["PUBLIC_URL"] = PUBLIC_URL
    return env


@pytest.fixture
def plans(settings):
    return Catalogue.from_file(settings.plans_file)


def rows_of(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.output
    return {row["external_id"]: row for row in json.loads(result.stdout)["rows"]}


def counts() -> dict[str, int]:
    return {"events": Event.select().count(), "grants": Grant.select().count(), "ledger": LedgerEntry.select().count(),
            "state": ReconcileState.select().count()}


def active_grants(user_id: int) -> list[Grant]:
    return [g for g in Grant.select().join_from(Grant, Grant.user.rel_model).where(Grant.user.rel_model.telegram_id == user_id)
            if g.revoked_at is None]


def settled(*external_ids: str) -> None:
    def done():
        statuses = {e.external_id: e.status for e in Event.select().where(Event.external_id.in_(list(external_ids)))}
        return len(statuses) == len(external_ids) and all(s in ("processed", "ignored") for s in statuses.values())

    wait_for(done, message=f"events {external_ids} handled")


# -- Telegram --------------------------------------------------------------------------------


def missed_star_payments(client, telegram_api, plans) -> dict[int, str]:
    """Three Stars payments whose webhooks were refused (wrong secret), and a refund of the third, all in the ledger."""
    plan = plans.get("premium_week")
    charges = {}
    for user_id in (101, 102, 103):
        payload = payments.encode_payload(plan.key, user_id)
        charge_id = updates.new_charge_id()
        refused = post_update(client, updates.successful_payment_update(user_id, payload, plan.stars, charge_id), headers=WRONG)
        assert refused.status_code == 401
        telegram_api.star_payment(user_id, plan.stars, payload, charge_id=charge_id)
        charges[user_id] = charge_id
    telegram_api.star_refund(charges[103])
    telegram_api.add_star_transaction({"amount": 500, "receiver": {"type": "fragment", "withdrawal_state": {"type": "succeeded", "date": 1, "url": "https://fragment.com"}}})
    return charges


def test_missed_stars_payments_are_granted_once_and_the_refund_revokes_its_own(cli, client, worker, telegram_api, plans):
    charges = missed_star_payments(client, telegram_api, plans)
    assert Event.select().count() == 0

    before = counts()
    dry = rows_of(cli("reconcile", "telegram", "--dry-run", "--json"))
    assert counts() == before
    assert {charges[u]: "would record" for u in (101, 102, 103)}.items() <= {k: v["action"] for k, v in dry.items()}.items()
    assert dry[f"refund:{charges[103]}"] == {**dry[f"refund:{charges[103]}"], "kind": "refund", "action": "would record"}
    listed = [row for row in dry.values() if row["action"] == "listed"]
    assert [row["kind"] for row in listed] == ["fragment:succeeded"]

    granted = metric(client, "reconcile_found_total", provider="telegram", kind="payment")
    run = rows_of(cli("reconcile", "telegram", "--json"))
    assert {k: (v["kind"], v["action"]) for k, v in run.items() if v["action"] != "listed"} == {
        charges[101]: ("payment", "recorded"), charges[102]: ("payment", "recorded"), charges[103]: ("payment", "recorded"),
        f"refund:{charges[103]}": ("refund", "recorded"),
    }
    settled(*charges.values(), f"refund:{charges[103]}")
    assert [g.reference for g in active_grants(101)] == [charges[101]]
    assert [g.reference for g in active_grants(102)] == [charges[102]]
    assert active_grants(103) == []
    # Revoked, if anything: only the refunded payment's own grant.
    assert {g.reference for g in Grant.select().where(Grant.revoked_at.is_null(False))} <= {charges[103]}
    assert metric(client, "reconcile_found_total", provider="telegram", kind="payment") == granted + 3
    row = Event.get(Event.external_id == charges[101])
    assert "reconciliation" in EventLog.get(EventLog.event == row.id, EventLog.action == "received").detail

    # The webhook comes back: its late deliveries of the same payments are duplicates.
    plan = plans.get("premium_week")
    for user_id in (101, 102):
        payload = row.payload["message"]["successful_payment"]["invoice_payload"] if user_id == 101 else None
        late = updates.successful_payment_update(user_id, payload or payments.encode_payload(plan.key, user_id), plan.stars, charges[user_id])
        answer = post_update(client, late, headers=HEADERS)
        assert answer.status_code == 200 and answer.get_json()["status"] == "duplicate"
    assert Grant.select().where(Grant.reference.in_([charges[101], charges[102]])).count() == 2
    assert len(active_grants(101)) == len(active_grants(102)) == 1

    again = rows_of(cli("reconcile", "telegram", "--json"))
    assert [k for k, v in again.items() if v["action"] == "recorded"] == []
    assert {again[c]["action"] for c in charges.values()} == {"known"}


def test_a_payment_the_webhook_delivered_first_is_known_to_reconciliation(cli, client, worker, telegram_api, plans):
    plan = plans.get("premium_week")
    payload, charge_id = payments.encode_payload(plan.key, 7), updates.new_charge_id()
    assert post_update(client, updates.successful_payment_update(7, payload, plan.stars, charge_id)).status_code == 200
    telegram_api.star_payment(7, plan.stars, payload, charge_id=charge_id)

    rows = rows_of(cli("reconcile", "telegram", "--json"))

    assert rows[charge_id]["action"] == "known"
    settled(charge_id)
    assert len(active_grants(7)) == 1


def test_a_refund_never_told_revokes_what_its_payment_granted(cli, client, worker, telegram_api, plans):
    plan = plans.get("premium_week")
    payload, charge_id = payments.encode_payload(plan.key, 8), updates.new_charge_id()
    assert post_update(client, updates.successful_payment_update(8, payload, plan.stars, charge_id)).status_code == 200
    settled(charge_id)
    telegram_api.star_payment(8, plan.stars, payload, charge_id=charge_id)
    telegram_api.star_refund(charge_id)  # a chargeback: Telegram deducted the Stars, no update came

    rows = rows_of(cli("reconcile", "telegram", "--json"))

    assert rows[f"refund:{charge_id}"]["action"] == "recorded"
    settled(f"refund:{charge_id}")
    assert active_grants(8) == []


def test_the_ledger_is_read_in_pages_newest_first_and_stops_at_the_window(cli, telegram_api, plans):
    import time

    plan = plans.get("premium_week")
    now = int(time.time())
    for i in range(230):
        telegram_api.star_payment(1000 + i, plan.stars, payments.encode_payload(plan.key, 1000 + i), date=now - i * 60)
    telegram_api.star_payment(9, plan.stars, payments.encode_payload(plan.key, 9), date=now - 40 * 86400)

    telegram_api.star_ledger_newest_first = True

    result = cli("reconcile", "telegram", "--dry-run", "--days", "30", "--json")

    summary = json.loads(result.stdout)["summary"]
    assert summary["found"] == 230 and summary["would_record"] == 230
    calls = telegram_api.calls_to("getStarTransactions")
    assert [(c.params.get("offset", "0"), c.params["limit"]) for c in calls] == [("0", "100"), ("100", "100"), ("200", "100")]


@pytest.mark.parametrize("newest_first", [False, True], ids=["chronological as documented", "newest first"])
def test_the_new_transactions_are_found_whichever_order_telegram_pages_in(cli, telegram_api, plans, newest_first):
    import time

    plan = plans.get("premium_week")
    now = int(time.time())
    for i in range(150):
        telegram_api.star_payment(2000 + i, plan.stars, payments.encode_payload(plan.key, 2000 + i), date=now - 40 * 86400 + i)
    new = [telegram_api.star_payment(3000 + i, plan.stars, payments.encode_payload(plan.key, 3000 + i), date=now - 60 + i)["id"]
           for i in range(3)]
    telegram_api.star_ledger_newest_first = newest_first

    rows = rows_of(cli("reconcile", "telegram", "--days", "30", "--dry-run", "--json"))

    assert {k: v["action"] for k, v in rows.items()} == {charge: "would record" for charge in new}


def test_a_routine_run_resumes_a_chronological_ledger_a_page_before_where_the_last_run_ended(cli, settings, telegram_api, plans):
    import time

    from app.reconcile import runs, service

    plan = plans.get("premium_week")
    now = int(time.time())
    for i in range(250):
        telegram_api.star_payment(4000 + i, plan.stars, payments.encode_payload(plan.key, 4000 + i), date=now - 86400 + i * 60)
    assert rows_of(cli("reconcile", "telegram", "--json"))
    new = [telegram_api.star_payment(5000 + i, plan.stars, payments.encode_payload(plan.key, 5000 + i), date=now + i)["id"]
           for i in range(3)]
    before = len(telegram_api.calls_to("getStarTransactions"))

    report = service.reconcile("telegram", settings, routine=True)
    runs.finish("telegram", report=report)

    calls = telegram_api.calls_to("getStarTransactions")[before:]
    assert [c.params.get("offset") for c in calls] == ["150", "250"]
    assert {r["external_id"] for r in report.rows if r["action"] == "recorded"} == set(new)
    assert report.summary()["ledger_read_to"] == 253


def test_a_routine_run_steps_further_back_when_the_page_before_its_end_is_inside_the_window(cli, settings, telegram_api, plans):
    import time

    from app.reconcile import runs, service

    plan = plans.get("premium_week")
    now = int(time.time())
    for i in range(350):  # 200 from yesterday, then 150 from the last few minutes
        date = now - 86400 + i * 60 if i < 200 else now - 300 + i - 200
        telegram_api.star_payment(6000 + i, plan.stars, payments.encode_payload(plan.key, 6000 + i), date=date)
    assert rows_of(cli("reconcile", "telegram", "--json"))
    new = [telegram_api.star_payment(7000 + i, plan.stars, payments.encode_payload(plan.key, 7000 + i), date=now + i)["id"]
           for i in range(3)]
    before = len(telegram_api.calls_to("getStarTransactions"))

    report = service.reconcile("telegram", settings, routine=True)

    calls = telegram_api.calls_to("getStarTransactions")[before:]
    assert [c.params.get("offset") for c in calls] == ["250", "50", "150", "250", "350"]
    assert {r["external_id"] for r in report.rows if r["action"] == "recorded"} == set(new)


def test_malformed_ledger_entries_are_reported_and_skipped_and_the_rest_recorded(cli, client, worker, telegram_api, plans):
    plan = plans.get("premium_week")
    good = lambda user_id: telegram_api.star_payment(user_id, plan.stars, payments.encode_payload(plan.key, user_id))["id"]  # noqa: E731
    payload = payments.encode_payload(plan.key, 401)
    user = {"id": 401, "is_bot": False, "first_name": "Bad"}
    bad = {
        "amount-abc": {"amount": "abc", "source": {"type": "user", "transaction_type": "invoice_payment", "user": user, "invoice_payload": payload}},
        "no-user-id": {"amount": 75, "source": {"type": "user", "transaction_type": "invoice_payment", "user": {"first_name": "x"}, "invoice_payload": payload}},
        "period-month": {"amount": 75, "source": {"type": "user", "transaction_type": "invoice_payment", "user": user, "invoice_payload": payload,
                                                  "subscription_period": "month"}},
        "nul-payload": {"amount": 75, "source": {"type": "user", "transaction_type": "invoice_payment", "user": user, "invoice_payload": "e1\x00x"}},
        "date-text": {"amount": 75, "date": "yesterday", "source": {"type": "user", "transaction_type": "invoice_payment", "user": user,
                                                                     "invoice_payload": payload}},
    }
    first = good(402)
    for charge, transaction in bad.items():
        telegram_api.add_star_transaction({"id": charge, **transaction})
    telegram_api.add_star_transaction({"amount": 75, "source": {"type": "user", "user": user, "invoice_payload": payload}, "id": 17})
    after = [good(403), good(404)]

    result = cli("reconcile", "telegram", "--json")

    rows = rows_of(result)
    assert {k: v["action"] for k, v in rows.items() if v["action"] != "malformed"} == {c: "recorded" for c in [first, *after]}
    assert {k for k, v in rows.items() if v["action"] == "malformed"} == {*bad, "17"}
    assert "total_amount" in rows["amount-abc"]["summary"] and "date" in rows["date-text"]["summary"]
    assert "user.id" in rows["no-user-id"]["summary"] and "subscription_period" in rows["period-month"]["summary"]
    assert json.loads(result.stdout)["summary"]["malformed"] == 6
    settled(first, *after)
    assert all(len(active_grants(u)) == 1 for u in (402, 403, 404)) and active_grants(401) == []
    human = cli("reconcile", "telegram")
    assert human.exit_code == 0 and "6 malformed" in human.stdout


def test_without_a_bot_token_reconcile_telegram_says_so(cli):
    result = cli("reconcile", "telegram", TELEGRAM_BOT_TOKEN="")

    assert result.exit_code == 1
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr


# -- Stripe ----------------------------------------------------------------------------------


def test_missed_stripe_events_are_recorded_once_and_processed_as_if_delivered(cli, client, worker, stripe_api):
    paid = stripe_helpers.completed(201, stripe_api=stripe_api)
    refunded_session = stripe_helpers.completed(202, stripe_api=stripe_api)
    for event in (paid, refunded_session):
        assert stripe_helpers.post_event(client, event, secret="whsec_wrong_secret_after_redeploy").status_code == 400
        stripe_api.put_event(event)
    pi = refunded_session["data"]["object"]["payment_intent"]
    refund = events.event("charge.refunded", events.charge(payment_intent=pi, amount=500, amount_refunded=500, refunded=True))
    stripe_api.put_event(refund)
    stripe_api.put_event(events.event("customer.created", events.customer()))  # not a type the service handles

    before = counts()
    dry = rows_of(cli("reconcile", "stripe", "--dry-run", "--json"))
    assert counts() == before
    assert {k: (v["kind"], v["action"]) for k, v in dry.items()} == {
        paid["id"]: ("checkout.session.completed", "would record"),
        refunded_session["id"]: ("checkout.session.completed", "would record"),
        refund["id"]: ("charge.refunded", "would record"),
    }
    listed = stripe_api.calls_to("GET", "/v1/events")[-1].params
    assert "checkout.session.completed" in listed["types"] and "gte" in listed["created"]

    run = rows_of(cli("reconcile", "stripe", "--json"))
    assert {v["action"] for v in run.values()} == {"recorded"}
    settled(paid["id"], refunded_session["id"], refund["id"])
    assert len(active_grants(201)) == 1
    assert active_grants(202) == []
    assert Event.get(Event.external_id == paid["id"]).payload["data"]["object"]["id"] == paid["data"]["object"]["id"]

    late = stripe_helpers.post_event(client, paid)
    assert late.status_code == 200 and late.get_json()["result"] == "duplicate"
    assert len(active_grants(201)) == 1

    again = rows_of(cli("reconcile", "stripe", "--json"))
    assert {v["action"] for v in again.values()} == {"known"}


def test_the_stripe_event_list_is_paged_with_starting_after(cli, stripe_api):
    for _ in range(130):
        stripe_api.put_event(events.event("invoice.payment_failed", events.invoice()))

    summary = json.loads(cli("reconcile", "stripe", "--dry-run", "--json").stdout)["summary"]

    assert summary["would_record"] == 130 and summary["calls"] == 2
    assert "starting_after" in stripe_api.calls_to("GET", "/v1/events")[1].params


def test_status_shows_the_last_reconciliation_of_each_provider(cli, telegram_api, plans):
    plan = plans.get("premium_week")
    telegram_api.star_payment(5, plan.stars, payments.encode_payload(plan.key, 5))
    assert cli("reconcile", "telegram").exit_code == 0

    report = json.loads(cli("status", "--json").stdout)

    assert report["reconcile"]["telegram"]["recorded"] == 1
    assert report["reconcile"]["telegram"]["last_run"]
    assert report["reconcile"]["stripe"]["last_run"] is None
    text = cli("status").stdout
    assert "reconcile telegram" in text
