"""Shared fixtures: a real Redis broker, a fresh database per test, the runtime, the app, a worker and the CLI.

The broker and database come from the environment (CI sets DATABASE_URL to PostgreSQL and
REDIS_URL to the machine's Redis); without them the suite starts its own Redis and uses SQLite.
Nothing here edits `os.environ`: each test's settings are built from `TEST_ENV` and handed to
the runtime, the app and the CLI explicitly.
"""
from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from simulate.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent

_own_redis: RedisServer | None = None
if not (os.environ.get("BROKER_URL") or os.environ.get("REDIS_URL")):
    _own_redis = RedisServer().start()
REDIS_URL = os.environ.get("BROKER_URL") or os.environ.get("REDIS_URL") or _own_redis.url
DATABASE_URL = os.environ.get("DATABASE_URL", "")

# The settings of every test: a namespace of our own on the shared Redis, and small backoffs
# so retries take milliseconds. Subprocesses get them in their environment.
TEST_ENV = {
    "BROKER_URL": REDIS_URL,
    "BROKER_NAMESPACE": f"entitle-test-{uuid.uuid4().hex[:8]}",
    "EVENT_MAX_RETRIES": "3",
    "EVENT_MIN_BACKOFF_MS": "20",
    "EVENT_MAX_BACKOFF_MS": "200",
    "SWEEP_INTERVAL": "0.2",
    "SWEEP_AFTER": "0.5",
    "SWEEP_LOST_AFTER": "2",
    "JWT_SECRET_KEY": "test-jwt-secret-that-is-long-enough-for-hs256",
    "PLANS_FILE": str(ROOT / "plans.toml"),
    "ENTITLE_ENV": "test",
}

from app import composition, db, migrations  # noqa: E402
from app.webhooks import endpoints  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.models import ALL_MODELS  # noqa: E402
from simulate.stripe_api import FakeStripeAPI  # noqa: E402
from simulate.telegram_api import FakeTelegramAPI  # noqa: E402
from tests.support import processes  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    processes.end_all()
    if _own_redis is not None:
        _own_redis.stop()


def pytest_report_header(config):
    return [f"database: {DATABASE_URL.split('@')[-1] or 'sqlite (a file per test)'}", f"redis: {REDIS_URL}"]


@pytest.fixture(autouse=True)
def no_process_left():
    """Whatever a test started with tests.support.processes and did not end is ended after it (its signal, then SIGKILL)."""
    yield
    processes.end_all()


@pytest.fixture
def telegram_api() -> Iterator[FakeTelegramAPI]:
    """A started FakeTelegramAPI, stopped after the test."""
    with FakeTelegramAPI() as api:
        yield api


@pytest.fixture
def stripe_api() -> Iterator[FakeStripeAPI]:
    """A running `FakeStripeAPI`; give `stripe_api.url` to the app as `STRIPE_API_BASE`."""
    with FakeStripeAPI() as api:
        yield api


@pytest.fixture
def receiver():
    """A webhook receiver on a free port that verifies each outgoing webhook with the reference library."""
    from tests.support.webhook_receiver import WebhookReceiver

    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path):
    """The environment the app and CLI see in a test (a dict to extend before use)."""
    values = dict(TEST_ENV)
    values["DATABASE_URL"] = db_url_for(tmp_path)
    return values


def db_url_for(tmp_path: Path) -> str:
    """The test database: PostgreSQL when configured, else a fresh SQLite file."""
    if DATABASE_URL.startswith(("postgres://", "postgresql://")):
        return DATABASE_URL
    return f"sqlite:///{tmp_path / 'entitle.db'}"


@pytest.fixture
def settings(env):
    """Settings built from the test environment only (no `.env`)."""
    return load_settings(environ=env, env_file="/nonexistent/.env")


@pytest.fixture
def database(settings):
    """A bound, migrated, empty database."""
    bound = db.bind(settings.database_url)
    composition.wire()
    if db.is_postgres():
        if _needs_reset():
            bound.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        migrations.migrate()
        names = ", ".join(f'"{m._meta.table_name}"' for m in ALL_MODELS)
        bound.execute_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    else:
        migrations.migrate()
    endpoints.forget_subscriptions()  # a fresh database has no endpoints, whatever the last test added
    yield bound
    if not bound.is_closed():
        bound.close()


_reset_done = False


def _needs_reset() -> bool:
    """Start each test session on PostgreSQL from an empty schema, once."""
    global _reset_done
    if _reset_done:
        return False
    _reset_done = True
    return True


@pytest.fixture
def handler_tables():
    """The handler tables of the test's runtime: the providers' own; a test module overrides it to add a test provider's."""
    from workers.runtime import PROVIDER_TABLES

    return PROVIDER_TABLES


def make_runtime(settings, tables=None):
    """A runtime for these settings (and tables), its queues emptied."""
    from workers.runtime import PROVIDER_TABLES, build_runtime

    built = build_runtime(settings, tables=tables if tables is not None else PROVIDER_TABLES)
    built.broker.flush_all()
    return built


@pytest.fixture
def runtime(settings, handler_tables):
    """The runtime of the test settings: the Redis broker, emptied, with the actors declared on it."""
    built = make_runtime(settings, handler_tables)
    yield built
    built.broker.flush_all()


@pytest.fixture
def broker(runtime):
    """The runtime's Redis broker."""
    return runtime.broker


@pytest.fixture
def worker(broker, database):
    """An in-process Dramatiq worker on the Redis broker."""
    import dramatiq

    w = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    w.start()
    yield w
    w.stop(timeout=5000)


@pytest.fixture
def app(database, runtime):
    """The Flask app on the test database and runtime."""
    from webapp import create_app

    application = create_app(runtime=runtime)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app served over real HTTP on a free port, as `entitle run` serves it; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def client(app):
    """A test client of the Flask app."""
    return app.test_client()


class CLI:
    """Runs `entitle` in-process with the test environment; `.json()` parses stdout."""

    def __init__(self, env: dict):
        from typer.testing import CliRunner

        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, **extra_env: str):
        from cli import app as cli_app
        from cli import context

        context.settings.cache_clear()
        context.runtime.cache_clear()
        env = {**self.env, **extra_env}
        result = self.runner.invoke(cli_app, list(args), env=env, catch_exceptions=False)
        context.settings.cache_clear()
        context.runtime.cache_clear()
        return result


@pytest.fixture
def cli(env, database, broker):
    """The `entitle` command line, on the test database and broker."""
    return CLI(env)


@pytest.fixture(autouse=True)
def no_secret_in_logs(request, caplog):
    """Every test also proves that no configured secret reaches a log line."""
    import logging

    from app.config import SECRET_NAMES

    caplog.set_level(logging.INFO)
    env = request.getfixturevalue("env") if "env" in request.fixturenames else {}
    yield
    secrets = set()
    for name in SECRET_NAMES:
        for value in (env.get(name) or "").split(","):
            value = value.strip()
            secrets.update(part for part in (value, value.partition(":")[2]) if len(part) >= 8)
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in records)
    leaked = sorted({name for name in SECRET_NAMES for s in secrets if s in text and s in (env.get(name) or "")})
    assert not leaked, f"secret values of {leaked} appear in the captured logs"
