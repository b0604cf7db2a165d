"""The inbox pipeline: record once, process once, retry failures, replay what failed.

Given a handler registered for a test provider, when events go through the real Redis broker
and an in-process worker, then the rows, attempts and grants are what an operator would expect.
"""
from __future__ import annotations

import json
import threading

import pytest

from workers.runtime import PROVIDER_TABLES
from app import entitlements, inbox, users
from app.models import Event, Grant
from tests.support.waiting import wait_for

PROVIDER = "testpay"


@pytest.fixture
def handler_runs():
    """A handler for `testpay` `paid` events that grants `premium`; records each run."""
    runs: list[int] = []
    behaviour = {"fail_times": 0, "always_fail": False}

    def paid(event, context):
        runs.append(event.id)
        if behaviour["always_fail"]:
            raise RuntimeError("payment processor unreachable")
        if behaviour["fail_times"] > 0:
            behaviour["fail_times"] -= 1
            raise RuntimeError("transient failure")
        user = users.ensure_user(event.payload["user"])
        entitlements.grant(user, "premium", source=PROVIDER, reference=event.external_id, days=30)

    return runs, behaviour, {"paid": inbox.handler(paid)}


@pytest.fixture
def handler_tables(handler_runs):
    """The providers' tables and the test provider's, in this module's runtime."""
    return {**PROVIDER_TABLES, PROVIDER: handler_runs[2]}


def process(table: dict, event_id: int, **options) -> str:
    """Run an event through the inbox with this table as the test provider's."""
    return inbox.process(event_id, handlers=inbox.Handlers({PROVIDER: table}), context=None, **options)


def status_of(external_id: str) -> str:
    return Event.get(Event.external_id == external_id).status


def test_an_event_recorded_five_times_concurrently_is_one_row_and_one_run(worker, handler_runs, runtime):
    runs, _, _ = handler_runs
    barrier = threading.Barrier(5)

    def deliver():
        barrier.wait()
        runtime.accept(PROVIDER, "evt-1", "paid", {"user": 42})

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    wait_for(lambda: status_of("evt-1") == "processed", message="evt-1 processed")
    worker.join()
    assert Event.select().count() == 1
    assert len(runs) == 1
    assert Grant.select().where(Grant.reference == "evt-1").count() == 1


def test_a_handler_that_fails_twice_then_succeeds_ends_processed_after_three_attempts(worker, handler_runs, runtime):
    runs, behaviour, _ = handler_runs
    behaviour["fail_times"] = 2
    runtime.accept(PROVIDER, "evt-2", "paid", {"user": 7})
    wait_for(lambda: status_of("evt-2") == "processed", message="evt-2 processed")
    event = Event.get(Event.external_id == "evt-2")
    assert event.attempts == 3 and event.error is None
    actions = [h["action"] for h in inbox.event_to_dict(event, with_payload=True)["history"]]
    assert actions == ["received", "attempt_failed", "attempt_failed", "processed"]


def test_a_handler_that_always_fails_ends_failed_and_replay_after_the_fix_grants_once(worker, handler_runs, cli, runtime):
    runs, behaviour, _ = handler_runs
    behaviour["always_fail"] = True
    runtime.accept(PROVIDER, "evt-3", "paid", {"user": 9})
    wait_for(lambda: status_of("evt-3") == "failed", message="evt-3 failed")
    event = Event.get(Event.external_id == "evt-3")
    assert event.attempts == 4  # the first try and EVENT_MAX_RETRIES=3 retries
    assert "payment processor unreachable" in event.error

    listed = json.loads(cli("events", "list", "--status", "failed", "--json").stdout)
    assert [row["external_id"] for row in listed] == ["evt-3"]

    behaviour["always_fail"] = False
    result = cli("events", "replay", "--failed", "--json")
    assert result.exit_code == 0, result.output
    wait_for(lambda: status_of("evt-3") == "processed", message="evt-3 processed after replay")
    assert Grant.select().where(Grant.reference == "evt-3").count() == 1

    again = cli("events", "replay", str(event.id))
    assert again.exit_code == 0
    wait_for(lambda: status_of("evt-3") == "processed", message="evt-3 processed after second replay")
    worker.join()
    assert Grant.select().where(Grant.reference == "evt-3").count() == 1


def test_a_duplicate_of_a_processed_event_changes_nothing(worker, handler_runs, runtime):
    runs, _, _ = handler_runs
    runtime.accept(PROVIDER, "evt-4", "paid", {"user": 11})
    wait_for(lambda: status_of("evt-4") == "processed")
    again = runtime.accept(PROVIDER, "evt-4", "paid", {"user": 11})
    assert not again.created and not again.should_enqueue
    worker.join()
    assert len(runs) == 1


def test_a_duplicate_of_a_failed_event_runs_it_again(database, handler_runs):
    runs, behaviour, _ = handler_runs
    inbox.record(PROVIDER, "evt-5", "paid", {"user": 12})
    event = Event.get(Event.external_id == "evt-5")
    behaviour["always_fail"] = True
    with pytest.raises(inbox.PermanentError, match="payment processor unreachable"):
        process(handler_runs[2], event.id, final_attempt=True)
    assert status_of("evt-5") == "failed"
    again = inbox.record(PROVIDER, "evt-5", "paid", {"user": 12})
    assert again.should_enqueue and status_of("evt-5") == "pending"


def test_an_event_type_without_a_handler_is_ignored(worker, runtime):
    runtime.accept(PROVIDER, "evt-6", "something.else", {})
    wait_for(lambda: status_of("evt-6") == "ignored")
    assert "no handler" in Event.get(Event.external_id == "evt-6").error


def test_events_show_prints_payload_and_history(worker, handler_runs, cli, runtime):
    runtime.accept(PROVIDER, "evt-7", "paid", {"user": 13})
    wait_for(lambda: status_of("evt-7") == "processed")
    event_id = Event.get(Event.external_id == "evt-7").id
    shown = json.loads(cli("events", "show", str(event_id), "--json").stdout)
    assert shown["payload"] == {"user": 13}
    assert [h["action"] for h in shown["history"]] == ["received", "processed"]
    assert {"id", "provider", "type", "external_id", "status", "attempts", "received_at", "processed_at", "error"} <= set(shown)
    missing = cli("events", "show", "999999")
    assert missing.exit_code == 1 and "no event 999999" in missing.stderr


def test_replaying_an_unknown_event_exits_1(cli):
    result = cli("events", "replay", "424242")
    assert result.exit_code == 1
    assert "no such event" in result.stderr


def test_replay_needs_ids_or_failed(cli):
    assert cli("events", "replay").exit_code == 2


def test_after_commit_effects_run_once_the_grant_is_committed(database):
    seen = []

    def with_effect(event, context):
        user = users.ensure_user(21)
        entitlements.grant(user, "premium", source=PROVIDER, reference=event.external_id, days=1)
        inbox.after_commit(lambda: seen.append(Grant.select().where(Grant.reference == event.external_id).count()))

    table = {"with_effect": inbox.handler(with_effect)}
    inbox.record(PROVIDER, "evt-effect", "with_effect", {})
    event = Event.get(Event.external_id == "evt-effect")
    assert process(table, event.id, final_attempt=False) == "processed"
    assert seen == [1]
    assert process(table, event.id, final_attempt=False) == "processed"
    assert seen == [1], "a duplicate run has no effects"


def test_a_failed_handler_runs_no_effects(database):
    seen = []

    def fails(event, context):
        inbox.after_commit(lambda: seen.append("sent"))
        raise RuntimeError("boom")

    table = {"fails_after_effect": inbox.handler(fails)}
    inbox.record(PROVIDER, "evt-noeffect", "fails_after_effect", {})
    event = Event.get(Event.external_id == "evt-noeffect")
    with pytest.raises(RuntimeError):
        process(table, event.id, final_attempt=False)
    assert seen == [] and status_of("evt-noeffect") == "pending"


def test_a_non_transactional_handler_runs_outside_the_write_transaction(database):
    from app.db import database as db

    in_transaction = []

    def network_only(event, context):
        in_transaction.append(db.in_transaction())

    table = {"network_only": inbox.handler(network_only, transactional=False)}
    inbox.record(PROVIDER, "evt-net", "network_only", {})
    assert process(table, Event.get(Event.external_id == "evt-net").id, final_attempt=False) == "processed"
    assert in_transaction == [False]


def test_a_non_transactional_event_held_by_one_worker_is_left_alone_by_another(database):
    runs = []
    started, release = threading.Event(), threading.Event()

    def slow_network(event, context):
        runs.append(event.id)
        started.set()
        release.wait(5)

    table = {"slow_network": inbox.handler(slow_network, transactional=False)}
    inbox.record(PROVIDER, "evt-lease", "slow_network", {})
    event_id = Event.get(Event.external_id == "evt-lease").id
    first = threading.Thread(target=process, args=(table, event_id), kwargs={"final_attempt": False})
    first.start()
    started.wait(5)
    assert process(table, event_id, final_attempt=False) == "pending"
    release.set()
    first.join()
    assert runs == [event_id] and status_of("evt-lease") == "processed"
    assert Event.get(Event.external_id == "evt-lease").lease_until is None


def test_prepare_reads_outside_the_transaction_and_the_handler_writes_inside(database):
    from app.db import database as db

    seen = []

    def fetch(event, context):
        seen.append(("prepare", db.in_transaction()))
        return {"user": event.payload["user"], "days": 3}

    def apply(event, context, fetched):
        seen.append(("handler", db.in_transaction()))
        user = users.ensure_user(fetched["user"])
        entitlements.grant(user, "premium", source=PROVIDER, reference=event.external_id, days=fetched["days"])

    def nothing_to_fetch(event, context):
        raise inbox.Ignore("nothing upstream")

    table = {
        "prepared": inbox.handler(apply, prepare=fetch),
        "prepared_ignored": inbox.handler(apply, prepare=nothing_to_fetch),
    }
    inbox.record(PROVIDER, "evt-prep", "prepared", {"user": 5})
    assert process(table, Event.get(Event.external_id == "evt-prep").id, final_attempt=False) == "processed"
    assert seen == [("prepare", False), ("handler", True)]
    assert Grant.select().where(Grant.reference == "evt-prep").count() == 1

    inbox.record(PROVIDER, "evt-prep-2", "prepared_ignored", {"user": 5})
    assert process(table, Event.get(Event.external_id == "evt-prep-2").id, final_attempt=False) == "ignored"
    assert Event.get(Event.external_id == "evt-prep-2").error == "nothing upstream"


def test_prepared_first_claims_and_writes_in_one_transaction_and_a_failure_is_retried_without_a_grant(database):
    """A message that says its kind has `prepare` (`prepare_first`): the read runs before the claim, outside any transaction,
    and the claim, the handler's writes and the row's outcome are one transaction. A read or a handler that fails leaves
    nothing of that transaction but a counted attempt and its error; the row stays pending for the retry, and a copy of the
    message after the grant changes nothing."""
    from app.db import database as db

    seen, failing = [], {"prepare": 1, "handler": 1}

    def fetch(event, context):
        seen.append(("prepare", db.in_transaction()))
        if failing["prepare"]:
            failing["prepare"] -= 1
            raise RuntimeError("upstream down")
        return {"user": event.payload["user"]}

    def apply(event, context, fetched):
        row = Event.get_by_id(event.id)  # inside this transaction the attempt is already counted
        seen.append(("handler", db.in_transaction(), row.attempts))
        user = users.ensure_user(fetched["user"])
        entitlements.grant(user, "premium", source=PROVIDER, reference=event.external_id, days=3)
        if failing["handler"]:
            failing["handler"] -= 1
            raise RuntimeError("the write failed after the grant")

    table = {"prepared": inbox.handler(apply, prepare=fetch)}
    inbox.record(PROVIDER, "evt-first", "prepared", {"user": 6})
    row = Event.get(Event.external_id == "evt-first")

    def left() -> Event:
        return Event.get_by_id(row.id)

    with pytest.raises(RuntimeError, match="upstream down"):
        process(table, row.id, prepare_first=True, max_attempts=5)
    assert (left().status, left().attempts, left().started_at, left().processed_at) == ("pending", 1, None, None)
    assert "upstream down" in left().error and Grant.select().count() == 0

    with pytest.raises(RuntimeError, match="after the grant"):
        process(table, row.id, prepare_first=True, max_attempts=5)
    assert (left().status, left().attempts, left().started_at) == ("pending", 2, None)
    assert "after the grant" in left().error and Grant.select().count() == 0  # rolled back with its claim

    assert process(table, row.id, prepare_first=True, max_attempts=5) == "processed"
    assert process(table, row.id, prepare_first=True, max_attempts=5) == "processed"  # a copy of the message
    assert seen == [("prepare", False), ("prepare", False), ("handler", True, 2), ("prepare", False), ("handler", True, 3)]
    assert (left().status, left().attempts, left().error, left().started_at) == ("processed", 3, None, None)
    assert Grant.select().where(Grant.reference == "evt-first").count() == 1


def test_an_in_claim_handler_that_fails_leaves_no_outcome_the_claim_wrote_up_front(database):
    """The claim of a handler that runs in its transaction writes the row `processed` up front; a failure or an ignore
    writes over it under the same lock, so no one ever sees a failed attempt as processed."""
    outcomes = iter([RuntimeError("not yet"), inbox.Ignore("nothing to do")])

    def paid(event, context):
        raise next(outcomes)

    table = {"paid": inbox.handler(paid)}
    inbox.record(PROVIDER, "evt-up-front", "paid", {"user": 7})
    row = Event.get(Event.external_id == "evt-up-front")
    with pytest.raises(RuntimeError):
        process(table, row.id, max_attempts=5)
    after = Event.get_by_id(row.id)
    assert (after.status, after.attempts, after.processed_at, after.started_at) == ("pending", 1, None, None)
    assert process(table, row.id, max_attempts=5) == "ignored"
    after = Event.get_by_id(row.id)
    assert (after.status, after.attempts, after.error) == ("ignored", 2, "nothing to do") and after.processed_at is not None


def test_the_sweeper_finds_failed_handoffs_killed_attempts_and_lost_messages_but_not_a_waiting_backlog(database):
    from datetime import timedelta

    from app.clock import utcnow

    def make(name: str) -> Event:
        return inbox.record(PROVIDER, name, "paid", {"user": 1}).event

    minute_ago = utcnow() - timedelta(seconds=60)
    handoff_failed, killed, oldest, older, newest = (make(n) for n in ("handoff", "killed", "oldest", "older", "newest"))
    Event.update(updated_at=minute_ago).where(Event.id == handoff_failed.id).execute()
    for event in (killed, oldest, older, newest):
        inbox.dispatch(event.id)
    Event.update(started_at=minute_ago).where(Event.id == killed.id).execute()
    for event, age in ((oldest, 50), (older, 40), (newest, 35)):
        Event.update(dispatched_at=utcnow() - timedelta(seconds=age)).where(Event.id == event.id).execute()

    assert [e.id for e in inbox.never_handed_off(older_than=30)] == [handoff_failed.id]
    assert [e.id for e in inbox.stuck_running(lost_after=30)] == [killed.id]

    def lost(in_broker: int) -> list[int]:
        return [e.id for e in inbox.lost_in_queue(in_broker=in_broker, kinds=(), inside=False, lost_after=30)]

    assert lost(3) == [], "three messages in the queue: one for each waiting row"
    assert lost(1) == [oldest.id, older.id], "the queue holds the newest; the older two are gone"
    assert lost(0) == [oldest.id, older.id, newest.id]
    assert [e.id for e in inbox.lost_in_queue(in_broker=0, kinds=[(PROVIDER, "paid")], inside=True, lost_after=60)] == []
    assert inbox.lost_in_queue(in_broker=0, kinds=[(PROVIDER, "paid")], inside=False, lost_after=30) == []


def test_rows_pending_at_the_upgrade_keep_generation_0_so_messages_already_queued_still_run(database):
    from app import migrations
    from app.models import SchemaMigration

    # Given a database from before hand-off generations, with a row pending
    for column in ("dispatch", "dispatched_at", "started_at"):
        database.execute_sql(f'ALTER TABLE "event" DROP COLUMN {column}')
    database.execute_sql(
        "INSERT INTO event (provider, external_id, type, payload, status, attempts, received_at, updated_at) "
        f"VALUES ('{PROVIDER}', 'evt-old', 'paid', '{{}}', 'pending', 0, '2024-01-01 00:00:00', '2024-01-01 00:00:00')"
    )
    SchemaMigration.delete().where(SchemaMigration.version == 5).execute()

    # When it is migrated
    assert 5 in [m.version for m in migrations.migrate()]

    # Then the row counts as handed off once, as its queued message (generation 0) says
    row = Event.get(Event.external_id == "evt-old")
    assert (row.dispatch, row.started_at) == (0, None) and row.dispatched_at is not None
