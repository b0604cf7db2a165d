"""Versioned schema migrations, applied in order and recorded in `schema_migration`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from app.db import database, transaction
from app.models import ApiKey, CheckoutSession, Event, EventLog, Grant, LedgerEntry, SchemaMigration, User, WorkerHeartbeat
from app.models import ReconcileState


# Migration 1 creates the tables from the models as they are; every later migration must
# therefore check before it changes anything, since a fresh database already has the change.
def _initial() -> None:
    database.create_tables([User, Event, EventLog, Grant, LedgerEntry])


@dataclass(frozen=True)
class Migration:
    """One schema change: its version, a name for `db status`, and the function that applies it."""

    version: int
    name: str
    apply: Callable[[], None]


def _event_lease() -> None:
    # Databases made by version 1 before `lease_until` existed lack it; newer ones got it from `_initial`.
    if "lease_until" not in {column.name for column in database.get_columns(Event._meta.table_name)}:
        from playhouse.migrate import SchemaMigrator, migrate

        migrate(SchemaMigrator.from_database(database.obj).add_column(Event._meta.table_name, "lease_until", Event.lease_until))


def _ledger_reference_index() -> None:
    # Every grant asks the ledger whether its payment was refunded first.
    table = LedgerEntry._meta.table_name
    database.execute_sql(f'CREATE INDEX IF NOT EXISTS "{table}_source_reference" ON "{table}" ("source", "reference")')


def _checkout_sessions() -> None:
    # The Checkout Sessions this service created, so `/checkout/success` asks Stripe only about those.
    database.create_tables([CheckoutSession], safe=True)


def _worker_heartbeats() -> None:
    database.create_tables([WorkerHeartbeat], safe=True)


def _event_dispatch() -> None:
    # Rows pending at the upgrade count as handed off once (generation 0), which is what the
    # messages already in the queue carry; a lost one is swept like any other.
    table = Event._meta.table_name
    have = {column.name for column in database.get_columns(table)}
    missing = [name for name in ("dispatch", "dispatched_at", "started_at") if name not in have]
    if missing:
        from playhouse.migrate import SchemaMigrator, migrate

        migrator = SchemaMigrator.from_database(database.obj)
        migrate(*[migrator.add_column(table, name, getattr(Event, name)) for name in missing])
    Event.update(dispatched_at=Event.updated_at).where((Event.status == "pending") & Event.dispatched_at.is_null()).execute()


def _transitions() -> None:
    from app.access.transitions import backfill_states
    from app.models import EntitlementState, EntitlementTransition, Reminder

    database.create_tables([EntitlementState, EntitlementTransition, Reminder], safe=True)
    # Holders from before transitions existed start from what they hold, so their end is noticed too.
    backfill_states()


def _api_keys() -> None:
    database.create_tables([ApiKey], safe=True)


def _webhooks() -> None:
    from app.models import WEBHOOK_MODELS

    database.create_tables(WEBHOOK_MODELS, safe=True)


def _reconcile_state() -> None:
    database.create_tables([ReconcileState], safe=True)


def _event_subject() -> None:
    # Events recorded before this have no subject; `events list --user` still finds them by their payload.
    table = Event._meta.table_name
    if "subject" not in {column.name for column in database.get_columns(table)}:
        from playhouse.migrate import SchemaMigrator, migrate

        migrator = SchemaMigrator.from_database(database.obj)
        migrate(migrator.add_column(table, "subject", Event.subject))  # with its index (the field has index=True)


def _join_queries() -> None:
    from app.models import JoinQuery

    database.create_tables([JoinQuery], safe=True)


def _emoji_status_access() -> None:
    from app.models import EmojiStatusAccess

    database.create_tables([EmojiStatusAccess], safe=True)


def _trials() -> None:
    from app.models import Trial

    database.create_tables([Trial], safe=True)


def _promo_codes() -> None:
    from app.models import PromoCode, PromoRedemption

    database.create_tables([PromoCode, PromoRedemption], safe=True)


def _gifts() -> None:
    from app.models import Gift

    database.create_tables([Gift], safe=True)


def _webhook_endpoint_index() -> None:
    # Each endpoint's lane looks up its own due deliveries, and status reads each endpoint's oldest due one.
    from app.models import WebhookDelivery

    table = WebhookDelivery._meta.table_name
    database.execute_sql(
        f'CREATE INDEX IF NOT EXISTS "{table}_endpoint_status_due" ON "{table}" ("endpoint_id", "status", "next_attempt_at")'
    )


def _api_key_limits() -> None:
    # Keys from before this may do everything, as they could; each key's requests are counted per minute.
    from app.models import ApiKeyUsage

    table = ApiKey._meta.table_name
    if "read_only" not in {column.name for column in database.get_columns(table)}:
        from playhouse.migrate import SchemaMigrator, migrate

        migrate(SchemaMigrator.from_database(database.obj).add_column(table, "read_only", ApiKey.read_only))
    database.create_tables([ApiKeyUsage], safe=True)


def _subscriptions() -> None:
    from app.models import SUBSCRIPTION_MODELS
    from app.subscriptions import backfill

    database.create_tables(SUBSCRIPTION_MODELS, safe=True)
    # Subscriptions granted before they had records get one from their latest grant.
    backfill()


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _initial),
    Migration(2, "event lease", _event_lease),
    Migration(3, "ledger index by payment", _ledger_reference_index),
    Migration(4, "checkout sessions created here", _checkout_sessions),
    Migration(5, "event hand-off generation", _event_dispatch),
    Migration(6, "worker heartbeats", _worker_heartbeats),
    Migration(7, "entitlement transitions and reminders", _transitions),
    Migration(9, "api keys", _api_keys),
    Migration(10, "outgoing webhooks", _webhooks),
    Migration(11, "reconciliation with the providers' ledgers", _reconcile_state),
    Migration(12, "event subject", _event_subject),
    Migration(13, "read-only api keys and their rate", _api_key_limits),
    Migration(14, "outgoing webhooks looked up per endpoint", _webhook_endpoint_index),
    Migration(19, "subscriptions and their state changes", _subscriptions),
    Migration(21, "chat join requests decided at the door", _join_queries),
    Migration(22, "emoji status access", _emoji_status_access),
    Migration(25, "free trials", _trials),
    Migration(26, "promo codes", _promo_codes),
    Migration(27, "gifts", _gifts),
]


def applied_versions() -> set[int]:
    """Versions already applied to the bound database."""
    if not database.table_exists(SchemaMigration._meta.table_name):
        return set()
    return {row.version for row in SchemaMigration.select(SchemaMigration.version)}


def pending() -> list[Migration]:
    """Migrations not yet applied, in order."""
    done = applied_versions()
    return [m for m in MIGRATIONS if m.version not in done]


def migrate() -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return what was applied."""
    database.create_tables([SchemaMigration], safe=True)
    applied = []
    for migration in pending():
        with transaction():
            migration.apply()
            SchemaMigration.create(version=migration.version, name=migration.name)
        applied.append(migration)
    return applied


def status() -> list[tuple[Migration, bool]]:
    """Every known migration with whether it is applied."""
    done = applied_versions()
    return [(m, m.version in done) for m in MIGRATIONS]
