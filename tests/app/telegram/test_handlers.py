"""Stars payments from the inbox to grants: one-off, lifetime, subscriptions and their renewals, refunds.

Given updates posted to the webhook (`tests.support.delivery.deliver`), when the real worker runs them, then the grants, ledger,
inbox rows and messages to the payer are what the payer and the operator would expect.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from app.clock import from_timestamp, utcnow
from app.models import Event, Grant, LedgerEntry
from app.telegram import payments
from simulate import telegram_updates as updates
from tests.support.delivery import deliver
from tests.support.metrics import metric
from tests.support.telegram import payment_update, post_update, status_of, telegram_webhook, wait_until_done
from tests.support.waiting import wait_for

DAY = 24 * 3600


@pytest.fixture
def plans(app):
    return app.extensions["entitle"].catalogue()


def pay(client, user_id: int, plan, charge_id: str, *, paid_at: int | None = None, **extra) -> Grant:
    update = payment_update(user_id, plan, charge_id=charge_id, **extra)
    if paid_at is not None:
        update["message"]["date"] = paid_at
    row = deliver(client, telegram_webhook(update))
    assert (row.external_id, row.status) == (charge_id, "processed"), row.error
    return Grant.get(Grant.reference == charge_id)


def test_a_one_off_plan_grants_its_days_and_a_second_purchase_extends(client, worker, plans):
    week = plans.get("premium_week")

    first = pay(client, 42, week, "stx-week-1")
    second = pay(client, 42, week, "stx-week-2")

    assert first.ends_at - first.starts_at == timedelta(days=7)
    assert first.starts_at <= utcnow() + timedelta(seconds=1)
    assert (second.starts_at, second.ends_at) == (first.ends_at, first.ends_at + timedelta(days=7))
    assert (first.source, first.plan, first.subscription_id) == ("telegram", "premium_week", None)


def test_a_lifetime_plan_never_ends(client, worker, plans, telegram_api):
    grant = pay(client, 42, plans.get("supporter_lifetime"), "stx-life")

    assert (grant.entitlement, grant.ends_at) == ("supporter", None)
    wait_for(lambda: telegram_api.calls_to("sendMessage"))
    assert "supporter is yours for good" in telegram_api.calls_to("sendMessage")[0].params["text"]


def test_a_subscription_grants_to_its_expiration_a_renewal_extends_and_refunding_the_renewal_revokes_only_it(
    client, worker, plans, telegram_api
):
    month = plans.get("premium_month")
    payload = payments.encode_payload(month.key, 42)
    # Subscribed almost 30 days ago; the renewal is charged now, as the first period ends.
    first_paid = int(time.time()) - 30 * DAY + 3600
    first_expiry = first_paid + 30 * DAY
    renewal_expiry = first_expiry + 30 * DAY

    first = pay(client, 42, month, "stx-sub-1", payload=payload, paid_at=first_paid,
                subscription_expiration_date=first_expiry, is_first_recurring=True)
    assert first.ends_at == from_timestamp(first_expiry)
    assert first.subscription_id == f"telegram:{payload}"

    renewal = pay(client, 42, month, "stx-sub-2", payload=payload,
                  subscription_expiration_date=renewal_expiry, is_recurring=True)
    assert renewal.ends_at == from_timestamp(renewal_expiry)
    assert renewal.subscription_id == first.subscription_id
    wait_for(lambda: len(telegram_api.calls_to("sendMessage")) == 2)
    assert "has renewed" in telegram_api.calls_to("sendMessage")[1].params["text"]

    refund = deliver(client, telegram_webhook(updates.refunded_payment_update(42, payload, month.stars, "stx-sub-2")))
    assert (refund.external_id, refund.status) == ("refund:stx-sub-2", "processed")

    first, renewal = Grant.get_by_id(first.id), Grant.get_by_id(renewal.id)
    assert renewal.revoked_at is not None and first.revoked_at is None
    assert [e["expires_at"] for e in client_entitlements(42)] == [first.ends_at.isoformat() + "Z"]


def client_entitlements(user_id: int) -> list[dict]:
    from app import entitlements, users

    return entitlements.summary(users.find_user(user_id))


def test_a_payment_for_a_plan_the_catalogue_no_longer_has_fails_at_once_naming_the_refund_command(client, worker):
    update = updates.successful_payment_update(42, "e1:retired_plan:42:0badc0de", 300, "stx-retired")

    event = deliver(client, telegram_webhook(update))

    assert (event.external_id, event.status, event.attempts) == ("stx-retired", "failed", 1)
    assert "entitle refund telegram stx-retired" in event.error
    assert Grant.select().count() == 0


def test_a_confirmation_telegram_cannot_take_is_sent_again_and_the_grant_stands(client, worker, plans, telegram_api):
    telegram_api.fail("sendMessage", error_code=502, description="Bad Gateway", times=1)

    grant = pay(client, 42, plans.get("premium_week"), "stx-later")

    assert grant.revoked_at is None
    wait_until_done("confirm:stx-later")
    sent = telegram_api.calls_to("sendMessage")
    assert len(sent) == 2 and sent[0].params == sent[1].params
    # The message was retried alone: the payment ran once and its grant is as it was written.
    confirm = Event.get(Event.external_id == "confirm:stx-later")
    assert (confirm.type, confirm.status, confirm.attempts) == ("send_message", "processed", 2)
    assert Event.get(Event.external_id == "stx-later").attempts == 1
    assert Grant.get_by_id(grant.id).ends_at == grant.ends_at and Grant.select().count() == 1


def test_a_payer_who_blocked_the_bot_still_gets_the_grant(client, worker, plans, telegram_api):
    telegram_api.fail("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user")

    grant = pay(client, 42, plans.get("premium_week"), "stx-blocked")

    assert grant.revoked_at is None
    # Telegram's 403 is final: the message is ignored, not retried.
    wait_until_done("confirm:stx-blocked", "ignored")
    worker.join()
    assert len(telegram_api.calls_to("sendMessage")) == 1


def test_a_refund_handled_before_its_payment_keeps_the_payment_from_granting(client, database, worker, plans):
    from app import inbox

    # The payment sits in the inbox unqueued (as after a broker outage) while the refund arrives.
    update = payment_update(42, plans.get("premium_week"), charge_id="stx-early")
    inbox.record("telegram", "stx-early", "successful_payment", update)
    payload = update["message"]["successful_payment"]["invoice_payload"]
    assert deliver(client, telegram_webhook(updates.refunded_payment_update(42, payload, 75, "stx-early"))).status == "processed"

    payment = wait_until_done("stx-early", "ignored")  # the sweeper hands the payment over

    assert "refunded before it was granted" in payment.error
    assert Grant.select().count() == 0


def test_a_payment_refunded_before_it_was_ever_granted_is_not_granted_on_replay(client, worker, plans, cli):
    update = updates.successful_payment_update(42, "e1:retired_plan:42:0badc0de", 300, "stx-gone")
    assert deliver(client, telegram_webhook(update)).status == "failed"
    assert deliver(client, telegram_webhook(updates.refunded_payment_update(42, "e1:retired_plan:42:0badc0de", 300, "stx-gone"))).status == "processed"
    assert LedgerEntry.select().where((LedgerEntry.reference == "stx-gone") & (LedgerEntry.action == "refund")).count() == 1

    event = Event.get(Event.external_id == "stx-gone")
    assert cli("events", "replay", str(event.id)).exit_code == 0
    replayed = wait_until_done("stx-gone", "ignored")
    assert "refunded before it was granted" in replayed.error
    assert Grant.select().count() == 0


def test_the_ledger_names_the_charge_amount_and_payer(client, worker, plans):
    pay(client, 42, plans.get("premium_week"), "stx-ledger")

    (entry,) = LedgerEntry.select().where(LedgerEntry.reference == "stx-ledger")
    assert (entry.action, entry.source, entry.entitlement) == ("grant", "telegram", "premium")
    assert entry.detail["amount"] == 75 and entry.detail["currency"] == "XTR"
    assert entry.user.telegram_id == 42 and entry.user.username == "user42"


def test_a_payment_whose_payer_has_no_last_name_or_username_now_clears_the_stored_ones(client, worker, plans):
    from app import users

    week = plans.get("premium_week")
    pay(client, 42, week, "stx-named-1")
    assert (users.find_user(42).last_name, users.find_user(42).username) == ("User 42", "user42")
    update = payment_update(42, week, charge_id="stx-unnamed-2")
    for key in ("last_name", "username"):
        del update["message"]["from"][key]

    row = deliver(client, telegram_webhook(update))

    assert row.status == "processed", row.error
    user = users.find_user(42)
    assert (user.first_name, user.last_name, user.username, user.language_code) == ("Test", None, None, "en")


def test_renewals_are_counted_apart_from_first_payments(client, worker, plans):
    month = plans.get("premium_month")
    expiry = int(time.time()) + 30 * DAY
    before = metric(client, "telegram_payments_total", result="renewed")

    pay(client, 42, month, "stx-r1", subscription_expiration_date=expiry, is_recurring=True)

    assert metric(client, "telegram_payments_total", result="renewed") == before + 1


# -- payments that are not what was invoiced ------------------------------------------------

YEAR_2100 = 4102444800


def _mismatched_payment(kind: str, plans) -> tuple[dict, str]:
    """A payment update that differs from its invoice in one way, and words its error must carry."""
    month, week = plans.get("premium_month"), plans.get("premium_week")
    in_30_days = int(time.time()) + 30 * DAY
    if kind == "amount":
        update = payment_update(42, month, subscription_expiration_date=in_30_days, is_first_recurring=True)
        update["message"]["successful_payment"]["total_amount"] = 1
        return update, "1 Stars were paid, but plan 'premium_month' costs 250"
    if kind == "huge amount":
        update = payment_update(42, week)
        update["message"]["successful_payment"]["total_amount"] = 2**53 - 1
        return update, f"{2**53 - 1} Stars were paid"
    if kind == "currency":
        return payment_update(42, week, currency="USD"), "'USD', not XTR"
    if kind == "another user":
        return payment_update(42, week, payload=payments.encode_payload(week.key, 43)), "made out to user 43, but user 42 paid"
    if kind == "end in 2100":
        update = payment_update(42, month, subscription_expiration_date=YEAR_2100, is_first_recurring=True)
        return update, "subscription_expiration_date 2100-01-01T00:00:00Z is not within one 30-day period"
    raise AssertionError(kind)


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("kind", ["amount", "huge amount", "currency", "another user", "end in 2100"])
def test_a_payment_that_is_not_what_was_invoiced_fails_at_once_grants_nothing_and_names_the_refund(
    client, worker, plans, cli, kind
):
    update, reason = _mismatched_payment(kind, plans)
    payment = update["message"]["successful_payment"]
    charge_id = payment["telegram_payment_charge_id"]
    value_before = metric(client, "telegram_payment_value_total", currency=payment["currency"])
    unfulfilled_before = metric(client, "telegram_payments_total", result="unfulfilled")

    assert deliver(client, telegram_webhook(update)).status == "failed"

    (row,) = [r for r in _json(cli("events", "list", "--json")) if r["external_id"] == charge_id]
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert reason in row["error"]
    assert f"entitle refund telegram {charge_id}" in row["error"]
    assert _json(cli("entitlements", "list", "--json")) == []
    assert Grant.select().count() == 0
    assert metric(client, "telegram_payment_value_total", currency=payment["currency"]) == value_before
    assert metric(client, "telegram_payments_total", result="unfulfilled") == unfulfilled_before + 1


def test_a_lifetime_plan_ignores_a_subscription_end_and_grants_for_good(client, worker, plans):
    soon = int(time.time()) + 5

    grant = pay(client, 42, plans.get("supporter_lifetime"), "stx-life-soon", subscription_expiration_date=soon)

    assert (grant.ends_at, grant.subscription_id) == (None, None)
    assert client_entitlements(42) == [{"entitlement": "supporter", "active": True, "expires_at": None}]


# -- a refund seen before its payment -------------------------------------------------------


def test_a_refund_that_arrives_before_its_payment_is_remembered_and_the_payment_never_grants(client, worker, plans):
    week = plans.get("premium_week")
    update = payment_update(42, week, charge_id="stx-refund-first")
    payload = update["message"]["successful_payment"]["invoice_payload"]
    refund = updates.refunded_payment_update(42, payload, week.stars, "stx-refund-first")

    first = deliver(client, telegram_webhook(refund))
    assert (first.external_id, first.status, first.attempts) == ("refund:stx-refund-first", "processed", 1)
    payment = deliver(client, telegram_webhook(update))
    assert payment.status == "ignored"
    again = post_update(client, refund)

    assert "refunded before it was granted" in payment.error
    assert Grant.select().count() == 0
    assert client_entitlements(42) == []
    assert again.get_json()["status"] == "duplicate"
    assert status_of("refund:stx-refund-first") == "processed"
    refunds = LedgerEntry.select().where((LedgerEntry.reference == "stx-refund-first") & (LedgerEntry.action == "refund"))
    assert [(entry.user.telegram_id, entry.detail["before_payment"]) for entry in refunds] == [(42, True)]


@pytest.fixture
def plans_file(env, tmp_path):
    """A copy of the example catalogue as PLANS_FILE, for a test that changes a price."""
    from tests.conftest import ROOT

    path = tmp_path / "plans.toml"
    path.write_text((ROOT / "plans.toml").read_text())
    env["PLANS_FILE"] = str(path)
    return path


def test_a_renewal_at_the_price_subscribed_to_still_grants_after_the_price_went_up(plans_file, client, worker, plans):
    month = plans.get("premium_month")
    payload = payments.encode_payload(month.key, 42)
    first_paid = int(time.time()) - 30 * DAY + 3600
    pay(client, 42, month, "stx-old-price-1", payload=payload, paid_at=first_paid,
        subscription_expiration_date=first_paid + 30 * DAY, is_first_recurring=True)
    plans_file.write_text(plans_file.read_text().replace("stars = 250", "stars = 300"))

    renewal = pay(client, 42, month, "stx-old-price-2", payload=payload,
                  subscription_expiration_date=first_paid + 60 * DAY, is_recurring=True)
    newcomer = payment_update(43, month, charge_id="stx-new-at-old-price",
                              subscription_expiration_date=int(time.time()) + 30 * DAY, is_first_recurring=True)
    failed = deliver(client, telegram_webhook(newcomer))

    assert renewal.revoked_at is None and renewal.ends_at == from_timestamp(first_paid + 60 * DAY)
    assert (failed.external_id, failed.status) == ("stx-new-at-old-price", "failed")
    assert "250 Stars were paid, but plan 'premium_month' costs 300" in failed.error


def test_a_payment_stacking_on_an_end_at_the_calendars_edge_is_granted(client, worker, plans):
    from datetime import datetime

    from app import users
    from app.models import Grant as GrantRow

    # A row written before `until` was bounded: it ends on the last day the calendar has.
    holder = users.ensure_user(42)
    GrantRow.create(user=holder, entitlement="premium", source="api", reference="far", starts_at=utcnow(),
                    ends_at=datetime(9999, 12, 31), created_at=utcnow())

    grant = pay(client, 42, plans.get("premium_week"), "stx-edge")

    assert grant.starts_at <= grant.ends_at <= datetime(9999, 12, 31)
