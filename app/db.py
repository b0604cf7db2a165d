"""The database: a Peewee proxy bound from `DATABASE_URL`."""
from __future__ import annotations

import contextlib
from urllib.parse import urlsplit

import peewee
from playhouse.db_url import connect as connect_url

database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 15000,
    "synchronous": "normal",
    "foreign_keys": 1,
}

# Per process: a gunicorn worker or Dramatiq thread holds at most one connection at a time.
POOL_SIZE = 32
POOL_STALE_SECONDS = 300
POOL_WAIT_SECONDS = 10


def make_database(url: str) -> peewee.Database:
    """A Peewee database for a URL: SQLite tuned for several processes, or PostgreSQL."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ":memory:"
        # IMMEDIATE takes the write lock at BEGIN, so two writers queue on the
        # busy timeout instead of failing to upgrade a read lock mid-transaction.
        return peewee.SqliteDatabase(
            path or ":memory:", pragmas=SQLITE_PRAGMAS, timeout=15, lock_type="IMMEDIATE", check_same_thread=False
        )
    if scheme in ("postgres", "postgresql"):
        # Pooled: a request or message borrows a connection and `close()` hands it back, since
        # opening a PostgreSQL backend costs more than an inbox write. A borrowed connection is
        # checked with a round trip first, so one broken by a database restart is replaced.
        url = "postgresql+pool://" + url.split("://", 1)[1]
        return connect_url(url, max_connections=POOL_SIZE, stale_timeout=POOL_STALE_SECONDS, timeout=POOL_WAIT_SECONDS)
    raise ValueError(f"DATABASE_URL scheme {scheme!r} is not supported (use sqlite:/// or postgresql://)")


def bind(url: str) -> peewee.Database:
    """Bind the proxy to the database at `url` and return it."""
    current = database.obj
    if current is not None and not current.is_closed():
        current.close()
    if current is not None and hasattr(current, "close_idle"):
        current.close_idle()  # a pool's idle connections would otherwise stay open
    db = make_database(url)
    database.initialize(db)
    return db


def is_postgres() -> bool:
    """True when the bound database is PostgreSQL."""
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def transaction():
    """A write transaction (IMMEDIATE on SQLite)."""
    return database.atomic()


def for_update(query):
    """Lock the selected rows until the transaction ends, where the database can."""
    return query.for_update() if is_postgres() else query


def lock_payment(source: str, reference: str) -> None:
    """Serialise, until the transaction ends, everything done about one payment (its grant and its refund).

    PostgreSQL takes a transaction-level advisory lock on the payment's key; SQLite already runs one
    write transaction at a time. A refund that names no payer has no user row to lock, so this is
    what keeps it from passing a grant of the same payment in the middle.
    """
    if is_postgres():
        database.execute_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (payment_key(source, reference),))


def payment_key(source: str, reference: str) -> str:
    """The text whose hash names one payment's lock."""
    return f"payment:{source}:{reference}"


def payment_lock(source: str, reference: str) -> peewee.Function:
    """`lock_payment` as an SQL expression, to take the lock inside another statement (PostgreSQL)."""
    return peewee.fn.pg_advisory_xact_lock(peewee.fn.hashtextextended(payment_key(source, reference), 0))


@contextlib.contextmanager
def connection():
    """Open a connection for the duration of a block when none is open."""
    opened = database.connect(reuse_if_open=True)
    try:
        yield
    finally:
        if opened and not database.in_transaction():
            database.close()


def ping() -> None:
    """Raise when the database cannot answer a trivial query."""
    with connection():
        database.execute_sql("SELECT 1").fetchone()
