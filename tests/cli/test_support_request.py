"""A support request starts with the payer's id: their events and their timeline show what happened, failures included."""
from __future__ import annotations

import json

import pytest

from tests.support.telegram import payment_update, post_update, telegram_env, wait_until_done
from tests.support.waiting import wait_for


@pytest.fixture
def env(env, telegram_api):
    """The suite's environment with the bot's settings and the stand-in Bot API."""
    return telegram_env(env, telegram_api)


def test_a_payer_who_says_they_paid_is_found_by_id_with_the_failed_payment_and_its_reason(client, cli, worker, telegram_api, app):
    plan = app.extensions["entitle"].catalogue().get("premium_week")
    good = payment_update(4711, plan, charge_id="stx-good-4711")
    short = payment_update(4711, plan, charge_id="stx-short-4711")
    short["message"]["successful_payment"]["total_amount"] = 1  # paid less than the plan's price
    other = payment_update(4712, plan, charge_id="stx-other-4712")
    for update in (good, short, other):
        assert post_update(client, update).status_code == 200
    wait_until_done("stx-good-4711")
    wait_until_done("stx-short-4711", "failed")
    wait_until_done("stx-other-4712")

    listed = cli("events", "list", "--user", "4711", "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    # The payment, the one that failed, and the thank-you written with the grant (sent by the workers after it).
    assert sorted(row["external_id"] for row in rows) == ["confirm:stx-good-4711", "stx-good-4711", "stx-short-4711"]
    assert {row["user"] for row in rows} == {4711}

    shown = json.loads(cli("customer", "show", "4711", "--json").stdout)
    kinds = [(line["kind"], line["reference"]) for line in shown["timeline"]]
    assert ("payment", "stx-good-4711") in kinds and ("event", "stx-short-4711") in kinds
    failed = next(line for line in shown["timeline"] if line["reference"] == "stx-short-4711")
    assert "failed" in failed["summary"] and "entitle refund telegram stx-short-4711" in failed["summary"]
    # The confirmation the bot sent (just after the grant's commit) is in the timeline too.
    def confirmed():
        timeline = json.loads(cli("customer", "show", "4711", "--json").stdout)["timeline"]
        return any(line["kind"] == "message" and "Thank you" in line["summary"] for line in timeline)

    wait_for(confirmed, message="the confirmation in the timeline")
