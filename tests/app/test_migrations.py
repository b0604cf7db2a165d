"""Schema migrations bring a database made by an older release up to the current models."""
from __future__ import annotations

from app import migrations
from app.models import Event, SchemaMigration


def test_a_database_from_before_the_event_lease_gains_the_column_on_migrate(database):
    # Given a database as version 1 made it before events had a lease
    database.execute_sql('ALTER TABLE "event" DROP COLUMN lease_until')
    SchemaMigration.delete().where(SchemaMigration.version > 1).execute()

    # When an operator runs `entitle db migrate`
    applied = migrations.migrate()

    # Then the lease column exists and events can be written and read again
    assert [m.version for m in applied] == [m.version for m in migrations.MIGRATIONS[1:]]
    assert "lease_until" in {c.name for c in database.get_columns("event")}
    event = Event.create(provider="testpay", external_id="after-migrate", type="paid", payload={})
    assert Event.get_by_id(event.id).lease_until is None


def test_a_fresh_database_applies_every_migration_once(database):
    assert migrations.pending() == []
    assert migrations.migrate() == []


def test_the_ledger_is_indexed_by_payment(database):
    names = {index.name for index in database.get_indexes("ledger_entry")}
    assert "ledger_entry_source_reference" in names
