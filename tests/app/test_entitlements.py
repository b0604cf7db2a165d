"""Entitlements are the union of grants: one per payment, revoked one by one."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app import entitlements, users
from app.clock import utcnow
from app.models import Grant, LedgerEntry


def test_granting_twice_for_the_same_payment_makes_one_grant(database):
    user = users.ensure_user(1001)
    first = entitlements.grant(user, "premium", source="telegram", reference="charge-P", days=30)
    second = entitlements.grant(user, "premium", source="telegram", reference="charge-P", days=30)
    assert first.created and not second.created
    assert Grant.select().count() == 1
    assert LedgerEntry.select().where(LedgerEntry.action.in_(["grant", "extend"])).count() == 1


def test_revoking_one_payment_keeps_the_entitlement_until_the_other_payment_ends(database):
    user = users.ensure_user(1002)
    q_end = utcnow() + timedelta(days=10)
    entitlements.grant(user, "premium", source="telegram", reference="charge-P", days=30, stack=False)
    entitlements.grant(user, "premium", source="stripe", reference="pi_Q", until=q_end)

    revoked = entitlements.revoke_reference("telegram", "charge-P", reason="refund")

    assert [g.reference for g in revoked] == ["charge-P"]
    [held] = entitlements.summary(user)
    assert held["entitlement"] == "premium" and held["active"]
    assert held["expires_at"] == q_end.replace(microsecond=0).isoformat() + "Z"
    assert Grant.get(Grant.reference == "pi_Q").revoked_at is None


def test_a_second_purchase_extends_from_the_end_of_the_first(database):
    user = users.ensure_user(1003)
    first = entitlements.grant(user, "premium", source="telegram", reference="c1", days=30).grant
    second = entitlements.grant(user, "premium", source="telegram", reference="c2", days=30).grant
    assert second.starts_at == first.ends_at
    assert second.ends_at - first.starts_at == timedelta(days=60)
    assert LedgerEntry.get(LedgerEntry.reference == "c2").action == "extend"


def test_lifetime_grants_never_expire(database):
    user = users.ensure_user(1004)
    entitlements.grant(user, "supporter", source="manual", reference="m1")
    assert entitlements.summary(user) == [{"entitlement": "supporter", "active": True, "expires_at": None}]
    later = utcnow() + timedelta(days=3650)
    assert entitlements.active_grants(user, now=later)


def test_expired_and_revoked_grants_are_not_active(database):
    user = users.ensure_user(1005)
    entitlements.grant(user, "premium", source="stripe", reference="old", until=utcnow() - timedelta(seconds=1))
    entitlements.grant(user, "premium", source="stripe", reference="gone", days=5)
    entitlements.revoke_reference("stripe", "gone", reason="refund")
    assert entitlements.summary(user) == []


def test_revoking_an_entitlement_by_hand_revokes_every_current_grant_and_records_it(database):
    user = users.ensure_user(1006)
    entitlements.grant(user, "premium", source="telegram", reference="a", days=30)
    entitlements.grant_manually(user, "premium", days=3)
    revoked = entitlements.revoke_entitlement(user, "premium")
    assert len(revoked) == 2
    assert entitlements.summary(user) == []
    assert LedgerEntry.select().where(LedgerEntry.action == "revoke").count() == 2


def test_current_end_joins_back_to_back_grants(database):
    user = users.ensure_user(1007)
    end = utcnow() + timedelta(days=1)
    entitlements.grant(user, "premium", source="stripe", reference="i1", until=end)
    now = utcnow()
    assert entitlements.current_end(user, "premium", now) == end
    assert entitlements.current_end(user, "other", now) is None
    entitlements.grant(user, "premium", source="manual", reference="life")
    assert entitlements.current_end(user, "premium", now) == datetime.max


def test_refunding_an_earlier_purchase_moves_the_later_one_forward(database):
    user = users.ensure_user(1008)
    first = entitlements.grant(user, "premium", source="telegram", reference="P", days=30).grant
    second = entitlements.grant(user, "premium", source="telegram", reference="Q", days=7).grant
    assert second.starts_at == first.ends_at

    entitlements.revoke_reference("telegram", "P", reason="refund")

    q = Grant.get(Grant.reference == "Q")
    assert q.starts_at <= utcnow() and q.ends_at - q.starts_at == timedelta(days=7)
    [held] = entitlements.summary(user)
    assert held["active"] and held["expires_at"] == q.ends_at.replace(microsecond=0).isoformat() + "Z"
    assert LedgerEntry.get(LedgerEntry.action == "reschedule").reference == "Q"


def test_two_payments_granted_at_once_both_count(database):
    import threading

    from app import db

    user = users.ensure_user(1009)
    barrier = threading.Barrier(2)

    def pay(reference):
        with db.connection():
            barrier.wait()
            entitlements.grant(user, "premium", source="telegram", reference=reference, days=10)

    threads = [threading.Thread(target=pay, args=(r,)) for r in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = Grant.get(Grant.reference == "A"), Grant.get(Grant.reference == "B")
    first, second = sorted([a, b], key=lambda g: g.starts_at)
    assert second.starts_at == first.ends_at, "the second payment extends the first"
    assert entitlements.current_end(user, "premium") - first.starts_at == timedelta(days=20)


def test_revoking_a_payment_revokes_its_grant_and_records_why(database):
    user = users.ensure_user(1010)
    entitlements.grant(user, "premium", source="stripe", reference="pi_R", days=30)
    entitlements.grant(user, "premium", source="stripe", reference="pi_S", days=30)

    [revoked] = entitlements.revoke_payment("stripe", "pi_R", reason="dispute", actor="stripe", detail={"dispute": "dp_1"})

    assert revoked.reference == "pi_R" and revoked.revoke_reason == "dispute"
    assert Grant.get(Grant.reference == "pi_S").revoked_at is None
    noted = LedgerEntry.get(LedgerEntry.action == "dispute")
    assert (noted.user.id, noted.entitlement, noted.detail) == (user.id, "premium", {"actor": "stripe", "revoked": 1, "dispute": "dp_1"})
    assert entitlements.revoke_payment("stripe", "pi_R", reason="dispute", actor="stripe") == []


def test_a_payment_taken_back_before_it_was_granted_never_grants(database):
    user = users.ensure_user(1011)
    assert entitlements.revoke_payment("telegram", "charge-early", reason="refund", actor="telegram", user=user) == []
    assert LedgerEntry.get(LedgerEntry.action == "refund").user.id == user.id
    assert entitlements.was_reversed("telegram", "charge-early")
    assert not entitlements.was_reversed("stripe", "charge-early")

    with pytest.raises(entitlements.PaymentReversed, match="charge-early was refunded before it was granted"):
        entitlements.grant(user, "premium", source="telegram", reference="charge-early", days=30)
    assert Grant.select().count() == 0


def test_a_partial_refund_does_not_count_as_taking_the_payment_back(database):
    user = users.ensure_user(1012)
    entitlements.record(user, "partial_refund", source="stripe", reference="pi_P", detail={"amount_refunded": 100})
    assert not entitlements.was_reversed("stripe", "pi_P")
    assert entitlements.grant(user, "premium", source="stripe", reference="pi_P", days=30).created


def test_a_refund_naming_no_payer_that_meets_its_grant_half_way_still_revokes_it(database):
    """A dispute names only the charge: it must wait for a grant of that payment in progress, then revoke it."""
    import threading
    import time

    from app import db

    user = users.ensure_user(1010)
    inside, done = threading.Event(), threading.Event()

    def refund_naming_no_payer():
        with db.connection():
            inside.wait(5)
            entitlements.revoke_payment("stripe", "pi_race", reason="dispute", actor="stripe")
            done.set()

    refunder = threading.Thread(target=refund_naming_no_payer)
    refunder.start()
    with db.transaction():
        # A grant of the payment, in progress: its transaction holds the payment's lock.
        db.lock_payment("stripe", "pi_race")
        inside.set()
        time.sleep(0.5)
        finished_meanwhile = done.is_set()
        entitlements.grant(user, "premium", source="stripe", reference="pi_race", days=30)
    refunder.join(10)

    grant = Grant.get(Grant.reference == "pi_race")
    if db.is_postgres():
        assert not finished_meanwhile, "the refund waited for the grant in progress"
    assert grant.revoked_at is not None and grant.revoke_reason == "dispute"
    assert entitlements.current_end(user, "premium") is None
