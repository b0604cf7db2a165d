"""Reminders before the end, and the transitions behind them, seen through the CLI, the rows and the stand-in."""
from __future__ import annotations

import time

from app.models import EntitlementTransition, Reminder
from tests.support.access import access_events, wait_all_done
from tests.support.waiting import wait_for

THREE_DAYS_AND_A_BIT = str(3 + 3 / 86400)  # the 3-day reminder is due in 3 seconds


def reminders_sent(telegram_api) -> list[str]:
    return [c.params["text"] for c in telegram_api.calls_to("sendMessage") if "ends in" in c.params["text"]]


def test_an_entitlement_ending_in_three_days_and_a_bit_gets_one_reminder_naming_how_to_renew(cli, worker, telegram_api):
    assert cli("entitlements", "grant", "42", "premium", "--days", THREE_DAYS_AND_A_BIT).exit_code == 0

    wait_for(lambda: reminders_sent(telegram_api), timeout=30, message="the 3-day reminder")
    time.sleep(2)

    texts = reminders_sent(telegram_api)
    assert len(texts) == 1
    assert "Premium ends in 3 days" in texts[0] and "/buy" in texts[0] and "Mini App" in texts[0]
    assert Reminder.select().where(Reminder.status == "pending").count() == 1  # the 1-day one, two days from now


def test_renewing_before_the_reminder_cancels_it(cli, worker, telegram_api):
    assert cli("entitlements", "grant", "42", "premium", "--days", THREE_DAYS_AND_A_BIT).exit_code == 0
    assert cli("entitlements", "grant", "42", "premium", "--days", "7").exit_code == 0

    time.sleep(6)

    assert reminders_sent(telegram_api) == []
    assert access_events("reminder") == []
    kinds = [t.kind for t in EntitlementTransition.select().order_by(EntitlementTransition.sequence)]
    assert kinds == ["started", "extended"]
    assert Reminder.select().where(Reminder.status == "skipped").count() == 2


def test_a_stacked_purchase_is_an_extension_and_revoking_all_ends_with_the_reason_revoked(cli, worker):
    cli("entitlements", "grant", "42", "premium", "--days", "7")
    cli("entitlements", "grant", "42", "premium", "--days", "7")
    assert cli("entitlements", "revoke", "42", "premium").exit_code == 0

    rows = list(EntitlementTransition.select().order_by(EntitlementTransition.sequence))
    assert [(t.kind, t.reason, t.sequence) for t in rows] == [("started", None, 1), ("extended", None, 2), ("ended", "revoked", 3)]
    assert rows[1].previous_end == rows[0].ends_at
    wait_all_done("chat_remove", 2)


def test_a_trials_reminder_says_it_is_a_trial(app, worker, telegram_api):
    from app import entitlements, users
    from app.access import rules

    user = users.ensure_user(43)
    with rules.using(app.extensions["entitle"].catalogue()):
        entitlements.grant(user, "premium", source="trial", reference="trial:43:premium", days=float(THREE_DAYS_AND_A_BIT))

    wait_for(lambda: reminders_sent(telegram_api), timeout=30, message="the trial's 3-day reminder")
    (text,) = reminders_sent(telegram_api)
    assert text.startswith("Your free trial of Premium ends in 3 days") and "/buy" in text
