"""`entitle events replay` on a payment that was granted and then refunded: the record stays as it is."""
from __future__ import annotations

import json

import pytest

from app.models import Grant
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.support.telegram import payment_update, post_update, telegram_env, wait_until_done


@pytest.fixture
def env(env, telegram_api):
    """The suite's environment plus the Telegram settings (tests/support/telegram.py)."""
    return telegram_env(env, telegram_api)


@pytest.fixture
def refunded_payment(client, worker):
    """A Stars payment granted by the worker, then refunded (its grant revoked); returns the payment's row."""
    plan = client.application.extensions["entitle"].catalogue().get("premium_week")
    post_update(client, payment_update(42, plan, charge_id="stx-refunded"))
    wait_until_done("stx-refunded")
    refund = updates.refunded_payment_update(42, payments.encode_payload(plan.key, 42), plan.stars, "stx-refunded")
    post_update(client, refund)
    wait_until_done("refund:stx-refunded")
    assert Grant.get(Grant.reference == "stx-refunded").revoked_at is not None
    return wait_until_done("stx-refunded")


def test_replaying_a_processed_payment_changes_nothing_and_says_so(refunded_payment, worker, cli):
    before = json.loads(cli("events", "show", str(refunded_payment.id), "--json").stdout)

    result = cli("events", "replay", str(refunded_payment.id))

    assert result.exit_code == 0, result.output
    assert f"event {refunded_payment.id}: already processed; nothing changed" in result.stdout
    worker.join()
    after = json.loads(cli("events", "show", str(refunded_payment.id), "--json").stdout)
    assert after == before
    assert after["status"] == "processed" and after["processed_at"] and after["error"] is None
    assert [h["action"] for h in after["history"]][-1] == "processed"
    grant = Grant.get(Grant.reference == "stx-refunded")
    assert grant.revoked_at is not None and Grant.select().count() == 1

    as_json = json.loads(cli("events", "replay", str(refunded_payment.id), "--json").stdout)
    assert as_json["replayed"] == [] and as_json["unchanged"] == [refunded_payment.id]


def test_replay_failed_still_runs_failed_events_beside_a_processed_one(refunded_payment, client, worker, cli):
    post_update(client, updates.successful_payment_update(43, "e1:retired_plan:43:0badc0de", 300, "stx-retired"))
    failed = wait_until_done("stx-retired", "failed")

    result = cli("events", "replay", "--failed", "--no-wait", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["replayed"] == [failed.id] and json.loads(result.stdout)["results"] == {str(failed.id): "queued"}
    wait_until_done("stx-retired", "failed")
    worker.join()
    assert wait_until_done("stx-retired", "failed").attempts == 1, "a fresh attempt, failed again for the same reason"
    assert wait_until_done("stx-refunded").status == "processed"


RETIRED_PLAN_PAYMENT = updates.successful_payment_update(43, "e1:retired_plan:43:0badc0de", 300, "stx-retired")


def test_a_replay_through_the_workers_waits_for_the_outcome_and_says_why_it_failed(client, worker, cli):
    post_update(client, RETIRED_PLAN_PAYMENT)
    failed = wait_until_done("stx-retired", "failed")

    result = cli("events", "replay", str(failed.id), "--verbose")

    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    assert f"event {failed.id}: failed" in said and "names no plan in the catalogue" in said
    as_json = json.loads(cli("events", "replay", str(failed.id), "--json").stdout)
    assert as_json["results"] == {str(failed.id): "failed"} and "names no plan" in as_json["errors"][str(failed.id)]


def test_a_replay_run_here_without_a_broker_says_why_it_failed(client, worker, cli):
    post_update(client, RETIRED_PLAN_PAYMENT)
    failed = wait_until_done("stx-retired", "failed")
    worker.stop()

    result = cli("events", "replay", str(failed.id), "--verbose", BROKER_URL="", REDIS_URL="")

    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    assert f"event {failed.id}: failed" in said and "names no plan in the catalogue" in said
