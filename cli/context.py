"""Settings, database and runtime for CLI commands, loaded once per invocation."""
from __future__ import annotations

import functools

from app import db
from app.config import ConfigError, Settings, load_settings
from cli.output import fail


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The configuration, or exit 1 naming what is wrong."""
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))


def database() -> None:
    """Bind the configured database, or exit 1 saying why."""
    if db.database.obj is None:
        try:
            db.bind(settings().database_url)
        except ValueError as exc:
            fail(str(exc))


def ready_database() -> None:
    """Bind the database and make sure its schema is current, or exit 1."""
    from app import migrations

    database()
    try:
        waiting = migrations.pending()
    except Exception as exc:
        fail(f"database unreachable: {type(exc).__name__}: {exc}")
    if waiting:
        fail(f"{len(waiting)} migration(s) pending: run `entitle db migrate` first")


@functools.lru_cache(maxsize=1)
def runtime():
    """The runtime for the configured settings (the broker and handler tables), built once per invocation."""
    from workers.runtime import build_runtime

    try:
        return build_runtime(settings())
    except ValueError as exc:
        fail(str(exc))
