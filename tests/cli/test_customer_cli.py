"""`entitle customer show`: a payer's timeline, where a support request starts."""
from __future__ import annotations

import json

import pytest

from app import entitlements, users
from app.models import Event
from simulate.sandbox import Sandbox
from tests.support.waiting import wait_for


@pytest.fixture
def sandboxed(env):
    """`entitle sandbox`'s stand-ins, served in this process, with the test's environment pointed at them.

    Ask for it before the app, the CLI or the settings, which read the environment when they are made.
    """
    with Sandbox() as box:
        env.update(box.environment())
        yield box


def test_customer_show_lists_payments_grants_refunds_and_revocations_oldest_first(cli, database):
    user = users.ensure_user(5150, first_name="Ada", username="ada")
    entitlements.grant(user, "premium", source="telegram", reference="charge-1", days=7, plan="premium_week",
                       detail={"amount": 75, "currency": "XTR", "charge_id": "charge-1"})
    entitlements.grant(user, "premium", source="stripe", reference="pi_123", days=30, plan="premium_month",
                       detail={"amount": 499, "currency": "eur"})
    entitlements.revoke_payment("telegram", "charge-1", reason="refund", actor="operator", detail={"amount": 75})
    assert cli("entitlements", "grant", "5150", "supporter").exit_code == 0

    result = cli("customer", "show", "5150", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["user"]["id"] == 5150 and shown["user"]["username"] == "ada"
    kinds = [(line["kind"], line["reference"]) for line in shown["timeline"]]
    # The refunded week is revoked, and the month stacked after it moves forward so no paid time is lost.
    assert kinds[:5] == [
        ("payment", "charge-1"), ("payment", "pi_123"), ("revocation", "charge-1"), ("reschedule", "pi_123"), ("refund", "charge-1"),
    ]
    assert kinds[-1][0] == "grant"
    summaries = [line["summary"] for line in shown["timeline"]]
    assert summaries[0].startswith("paid 75 XTR via telegram → premium")
    assert summaries[1].startswith("paid 4.99 EUR via stripe → premium")
    assert "revoked (refund, by operator)" in summaries[2]
    assert [e["entitlement"] for e in shown["entitlements"]] == ["premium", "supporter"]
    # As in /api/session and /api/me: whether the payer has a Stripe customer (this one never paid through Checkout).
    assert shown["user"]["stripe_customer"] is False and shown["user"]["stripe_customer_id"] is None

    human = cli("customer", "show", "5150")
    assert human.exit_code == 0
    assert "Ada" in human.stdout and "charge-1" in human.stdout and "refund" in human.stdout


def test_customer_show_of_an_unknown_user_exits_1(cli):
    result = cli("customer", "show", "424242")
    assert result.exit_code == 1
    assert "no user with Telegram id 424242" in result.stderr


def test_a_typo_in_a_manual_grant_is_refused_unless_new_says_it_is_meant(cli):
    typo = cli("entitlements", "grant", "101", "premum")
    assert typo.exit_code == 1
    assert "did you mean 'premium'" in typo.stderr and "--new" in typo.stderr
    assert json.loads(cli("entitlements", "list", "--user", "101", "--json").stdout) == []

    meant = cli("entitlements", "grant", "101", "beta_access", "--new", "--json")
    assert meant.exit_code == 0
    assert json.loads(meant.stdout)["entitlement"] == "beta_access"


def test_a_manual_grant_takes_fractions_of_a_day(cli):
    result = cli("entitlements", "grant", "102", "premium", "--days", "0.5", "--json")
    assert result.exit_code == 0, result.output
    grant = json.loads(result.stdout)
    from datetime import datetime

    length = datetime.fromisoformat(grant["expires_at"].replace("Z", "+00:00")) - datetime.fromisoformat(grant["starts_at"].replace("Z", "+00:00"))
    assert abs(length.total_seconds() - 43200) < 5


def test_a_manual_grant_to_an_id_that_is_not_a_telegram_id_is_a_usage_error(cli):
    assert cli("entitlements", "grant", "0", "premium").exit_code == 2
    assert cli("entitlements", "grant", "--", "-75", "premium").exit_code == 2


HOSTILE_NAME = "[link=https://evil.example/refund]Refund approved - click[/link]\x1b[2J"


def test_a_payers_name_is_printed_as_text_not_markup_and_control_characters_are_visible(cli, database):
    user = users.ensure_user(5151, first_name=HOSTILE_NAME, username="x[/]y")
    entitlements.grant(user, "premium", source="telegram", reference="charge-[red]1[/]", days=7, plan="premium_week",
                       detail={"amount": 75, "currency": "XTR", "charge_id": "charge-[red]1[/]"})

    human = cli("customer", "show", "5151")

    assert human.exit_code == 0, human.output
    assert "[link=https://evil.example/refund]Refund approved - click[/link]\\x1b[2J" in human.stdout
    assert "\x1b" not in human.stdout and "charge-[red]1[/]" in human.stdout


def test_event_errors_from_providers_are_printed_as_text(cli, database):
    from app import inbox
    from app.models import Event

    recorded = inbox.record("telegram", "upd-1", "command", {"update_id": 1}, subject=5152)
    Event.update(status="failed", error="Bad Request: [link=https://evil.example]x[/link]\x1b]8;;").where(
        Event.id == recorded.event.id
    ).execute()

    listing = cli("events", "list")
    shown = cli("events", "show", str(recorded.event.id))

    for result in (listing, shown):
        assert result.exit_code == 0, result.output
        assert "[link=https://evil.example]" in result.stdout and "\x1b" not in result.stdout


def test_a_long_message_in_the_timeline_is_cut_with_an_ellipsis(cli, database):
    from app import timeline

    assert cli("entitlements", "grant", "4343", "premium").exit_code == 0
    timeline.note_message(4343, "Thank you! " * 20, "confirmation")

    shown = json.loads(cli("customer", "show", "4343", "--json").stdout)

    [message] = [line for line in shown["timeline"] if line["kind"] == "message"]
    assert message["summary"].endswith("…") and len(message["summary"]) <= len("bot sent (confirmation): ") + 80


def test_a_simulated_card_payment_shows_what_it_charged_and_not_the_events_no_handler_takes(sandboxed, cli, live_server, worker):
    paid = cli("simulate", "stripe", "checkout", "--user-id", "6060", "--plan", "premium_week", "--url", live_server, "--json")
    assert paid.exit_code == 0, paid.output
    sent = json.loads(paid.stdout)
    assert sent["sandbox"] is True and [e["type"] for e in sent["events"]] == ["charge.succeeded", "payment_intent.succeeded", "checkout.session.completed"]
    done = Event.select().where((Event.provider == "stripe") & (Event.status != "pending"))
    wait_for(lambda: done.count() == 3, message="the three Stripe events handled")

    # The events the service has no handler for are still in the inbox, found by the payer's id.
    listed = json.loads(cli("events", "list", "--user", "6060", "--json").stdout)
    assert {row["type"]: row["status"] for row in listed if row["provider"] == "stripe"} == {
        "charge.succeeded": "ignored", "payment_intent.succeeded": "ignored", "checkout.session.completed": "processed",
    }

    shown = json.loads(cli("customer", "show", "6060", "--json").stdout)
    [payment] = [line for line in shown["timeline"] if line["kind"] == "payment"]
    assert payment["reference"] == sent["payment_intent"]
    assert payment["summary"].startswith("paid 5.00 USD via stripe → premium ")
    assert (payment["detail"]["amount"], payment["detail"]["currency"]) == (500, "usd")
    assert [line["summary"] for line in shown["timeline"] if line["kind"] == "event"] == []

    human = cli("customer", "show", "6060")
    assert human.exit_code == 0, human.output
    text = " ".join(human.stdout.split())
    assert "paid 5.00 USD via stripe → premium" in text
    assert "no handler" not in text and "charge.succeeded" not in text and "payment_intent.succeeded" not in text
