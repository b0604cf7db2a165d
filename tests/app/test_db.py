"""PostgreSQL connections are pooled: a closed one is reused, one the server dropped is replaced."""
from __future__ import annotations

import psycopg2
import pytest

from tests.conftest import DATABASE_URL

pytestmark = pytest.mark.skipif(not DATABASE_URL.startswith(("postgres://", "postgresql://")), reason="PostgreSQL only")


def backend_pid(db) -> int:
    return db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def test_a_connection_closed_after_a_request_is_reused_by_the_next_one(database):
    first = backend_pid(database)
    database.close()

    database.connect()

    assert backend_pid(database) == first


def test_a_pooled_connection_the_server_dropped_is_replaced_on_the_next_checkout(database, settings):
    # Given a pooled connection that PostgreSQL has since terminated (as a restart does)
    dropped = backend_pid(database)
    database.close()
    admin = psycopg2.connect(settings.database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (dropped,))
    admin.close()

    # When the next request borrows a connection, it gets a live one
    database.connect()
    assert backend_pid(database) != dropped
