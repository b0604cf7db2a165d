"""Open a database connection around each message and close it afterwards."""
from __future__ import annotations

from dramatiq.middleware import Middleware

from app.db import database


class DatabaseConnection(Middleware):
    """Each message gets a fresh connection, so a dropped one never poisons a worker thread."""

    def before_process_message(self, broker, message):
        database.connect(reuse_if_open=True)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if not database.is_closed() and not database.in_transaction():
            database.close()

    after_skip_message = after_process_message
