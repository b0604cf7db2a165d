"""Settings, database and runtime for CLI commands, loaded once per invocation."""
from __future__ import annotations

import contextlib
import functools
from typing import NoReturn

from app import composition, db
from app.config import ConfigError, Settings, load_settings, read_environment
from cli.output import fail


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The configuration, or exit 1 naming what is wrong."""
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))


def database() -> None:
    """Bind the configured database (the core composed), or exit 1 saying why."""
    if db.database.obj is None:
        try:
            db.bind(settings().database_url)
        except ValueError as exc:
            fail(str(exc))
    composition.wire()


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


def catalogue_or_none():
    """The plan catalogue, or None when the file cannot be read (commands that only change grants still work)."""
    from app.plans import Catalogue, PlanError

    try:
        return Catalogue.from_file(settings().plans_file)
    except PlanError:
        return None


@contextlib.contextmanager
def grant_changes():
    """Around a command that changes grants: transitions follow the catalogue's rules, and the events they record go to the workers."""
    from app.access import rules, transitions

    with rules.using(catalogue_or_none()), transitions.collecting_hand_offs() as event_ids:
        yield
    # Without a broker the workers run inside `entitle run`, whose sweeper takes the rows.
    if event_ids and not settings().embedded_broker:
        for event_id in event_ids:
            runtime().enqueue(event_id)


def outcome_of(provider: str, external_id: str, timeout: float = 10.0) -> str | None:
    """Wait until the service has run an event sent to it; its status (`processed`, `failed: …`), or None.

    None when this CLI cannot see the service's database (another DATABASE_URL) or the event is
    still waiting after `timeout` seconds; the command's own answer then says only that it was recorded.
    """
    import time

    from app.models import Event, EventStatus

    deadline = time.monotonic() + timeout
    try:
        database()
        while True:
            with db.connection():
                event = Event.get_or_none((Event.provider == provider) & (Event.external_id == external_id))
            if event is not None and event.status != EventStatus.PENDING:
                return f"{event.status}: {event.error}" if event.error else event.status
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
    except Exception:  # no schema here, or another database: the service's answer is all there is
        return None


def service_url(url: str | None) -> str:
    """The running service's base address: `--url` when given, else PUBLIC_URL (which follows PORT)."""
    return (url or settings().public_url).rstrip("/")


def where_the_address_comes_from(url_given: bool) -> str:
    """Which setting chose the service address a command tried, and how to change it."""
    if url_given:
        return "that address is the --url given"
    environment = read_environment()
    if (environment.get("PUBLIC_URL") or "").strip():
        return "that address comes from PUBLIC_URL (or pass --url)"
    port = (environment.get("PORT") or "").strip()
    if port:
        return f"that address comes from PORT={port}, as PUBLIC_URL is not set (set PUBLIC_URL, or pass --url)"
    return "neither PUBLIC_URL nor PORT is set, so the default port 8000 was tried (set PUBLIC_URL or PORT, or pass --url)"


def unreachable(address: str, exc: Exception, url_given: bool) -> NoReturn:
    """Exit 1 saying the service did not answer at `address`, which setting chose it, and what serves it."""
    fail(
        f"cannot reach {address} ({type(exc).__name__}); {where_the_address_comes_from(url_given)}. "
        "Is the service running there (`make run`, `entitle run`, or the Procfile's web under honcho)?"
    )


def did_not_end_well(outcome: str | None, *, ignored_is_fine: bool = False) -> bool:
    """Whether an event the CLI sent ended failed (or ignored): `outcome_of`'s answer; unknown (None) is not a failure."""
    if outcome is None or outcome == "processed":
        return False
    return not (ignored_is_fine and outcome.startswith("ignored"))
