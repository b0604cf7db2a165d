"""Statements and transactions per webhook and per payment, counted on PostgreSQL as the service runs them.

In process, on a database of its own, one payment per transaction (`BATCH_ROWS=1`: a backlog's
batches are measured by the drain): the Flask app (the real routes, the Redis broker) takes each
webhook through its test client, then the runtime processes each recorded row as a worker's
actor does, against the sandbox's Bot API and Stripe API in a thread. Every statement Peewee sends
is counted (a query hook), and so is every BEGIN, COMMIT and ROLLBACK, which Peewee sends without
the hook. When PostgreSQL has `pg_stat_statements` loaded (`shared_preload_libraries`), its count
of calls on the database is given beside; loading it needs a server restart, which the bench never
does on a shared server, so otherwise the table says so.
"""
from __future__ import annotations

import contextlib
import os

from bench import config, payloads
from bench.report import table

PAYMENTS = config.size(100, 500)
DATABASE = config.DATABASE + "_statements"
CEILINGS = {"webhook": 2, "payment": 10}


class Counter:
    """Round trips to the database: statements through Peewee's query hook, plus its transaction control."""

    def __init__(self, database):
        self.database = database
        self.statements = 0
        self.transactions = 0
        self.control = 0
        database.query_hooks.append(self._hook)
        for name in ("begin", "commit", "rollback"):
            original = getattr(database, name)
            setattr(database, name, self._counting(name, original))

    def _hook(self, event) -> None:
        self.statements += 1

    def _counting(self, name, original):
        def call(*args, **kwargs):
            self.control += 1
            if name == "begin":
                self.transactions += 1
            return original(*args, **kwargs)

        return call

    def snapshot(self) -> tuple[int, int, int]:
        """(statements, transaction-control round trips, transactions) so far."""
        return self.statements, self.control, self.transactions


def _pg_stat_statements(sql) -> bool:
    """True when pg_stat_statements is loaded and set up on the database (and reset)."""
    loaded = sql("SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'")
    if not loaded or "pg_stat_statements" not in loaded[0][0]:
        return False
    sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    sql("SELECT pg_stat_statements_reset()")
    return True


def _calls(sql) -> int:
    rows = sql("SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
               "WHERE d.datname = %s AND s.query NOT ILIKE '%%pg_stat_statements%%'", (DATABASE,))
    return int(rows[0][0])


def _sql_on(url: str):
    import psycopg2

    def sql(query: str, params: tuple = ()) -> list[tuple]:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    return sql


def run() -> dict:
    """Count per webhook and per payment, for Stars and for card payments."""
    from app import db, migrations
    from app.config import load_settings
    from app.models import Event
    from bench.services import ensure_database
    from simulate.sandbox import Sandbox
    from webapp import create_app
    from workers.runtime import build_runtime

    url = ensure_database(DATABASE)
    sql = _sql_on(url)
    sandbox = Sandbox(bot_token=config.BOT_TOKEN, stripe_secret_key=config.STRIPE_KEY).start()
    namespace = f"entitle-bench-statements-{os.getpid()}"
    try:
        env = {
            "DATABASE_URL": url, "BROKER_URL": config.REDIS_URL, "BROKER_NAMESPACE": namespace,
            "TELEGRAM_BOT_TOKEN": config.BOT_TOKEN, "TELEGRAM_WEBHOOK_SECRET": config.TELEGRAM_SECRET,
            "TELEGRAM_API_URL": sandbox.url, "STRIPE_SECRET_KEY": config.STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": config.STRIPE_SECRET, "STRIPE_API_BASE": sandbox.url,
            "JWT_SECRET_KEY": config.JWT_SECRET, "PLANS_FILE": str(config.ROOT / "plans.toml"),
            # Each payment in a transaction of its own, as without a backlog; what batches save shows in the drain.
            "BATCH_ROWS": "1",
        }
        settings = load_settings(environ=env, env_file="/nonexistent/.env")
        bound = db.bind(url)
        migrations.migrate()
        bound.execute_sql('TRUNCATE "ledger_entry", "grant", "event_log", "event", "user", "webhook_endpoint" '
                          "RESTART IDENTITY CASCADE")
        bound.close()
        runtime = build_runtime(settings)
        client = create_app(runtime=runtime).test_client()
        payloads.use_sandbox(sandbox.url)
        counter = Counter(bound)
        with_pgss = _pg_stat_statements(sql)
        results = {}
        first = 5_000_000
        for provider in ("telegram", "stripe"):
            paid = payloads.payments(PAYMENTS, first, (provider,))
            first += PAYMENTS
            results[provider] = _measure(client, runtime, counter, paid, sql if with_pgss else None, Event)
        return {"payments": PAYMENTS, "pg_stat_statements": with_pgss, "results": results}
    finally:
        payloads.use_sandbox(None)
        sandbox.stop()
        with contextlib.suppress(Exception):
            import redis

            r = redis.Redis.from_url(config.REDIS_URL)
            keys = list(r.scan_iter(f"{namespace}*"))
            if keys:
                r.delete(*keys)


def _measure(client, runtime, counter, paid, sql, Event) -> dict:
    """Deliver each payment's webhook, then process its row; the round trips of each, on average."""
    before, calls_before = counter.snapshot(), _calls(sql) if sql else 0
    for p in paid:
        request = p.request
        answer = client.post(request["path"], data=request["body"], headers=request["headers"])
        assert answer.status_code == 200, answer.get_data(as_text=True)
    after, calls_after = counter.snapshot(), _calls(sql) if sql else 0
    webhook = _per(before, after, len(paid)) | ({"pg_stat_statements": (calls_after - calls_before) / len(paid)} if sql else {})
    # This phase's payments only (not the thank-you messages an earlier phase wrote).
    # Each with what its message carries (`Runtime.message_options`), as the actor is handed it.
    rows = [(e.id, e.dispatch, runtime.message_options(e.provider, e.type))
            for e in Event.select(Event.id, Event.dispatch, Event.provider, Event.type)
            .where((Event.status == "pending") & (Event.provider == paid[0].provider)).order_by(Event.id)]
    before, calls_before = counter.snapshot(), _calls(sql) if sql else 0
    outcomes = [runtime.process(event_id, generation, **options) for event_id, generation, options in rows]
    after, calls_after = counter.snapshot(), _calls(sql) if sql else 0
    assert outcomes == ["processed"] * len(rows), set(outcomes)
    payment = _per(before, after, len(rows)) | ({"pg_stat_statements": (calls_after - calls_before) / len(rows)} if sql else {})
    return {"webhook": webhook, "payment": payment}


def _per(before: tuple[int, int, int], after: tuple[int, int, int], units: int) -> dict:
    statements, control, transactions = (b - a for a, b in zip(before, after))
    return {"statements": statements / units, "round_trips": (statements + control) / units,
            "transactions": transactions / units}


def render(summary: dict) -> str:
    """Statements per webhook and per payment beside their ceilings."""
    rows = []
    for provider, name in (("telegram", "Stars"), ("stripe", "card (Stripe Checkout)")):
        for unit in ("webhook", "payment"):
            r = summary["results"][provider][unit]
            measure = "statements" if unit == "payment" else "round_trips"
            value = r[measure]
            rows.append([f"{name}: per {unit}", f"{r['statements']:.1f}", f"{r['round_trips']:.1f}", f"{r['transactions']:.1f}",
                         f"{r['pg_stat_statements']:.1f}" if "pg_stat_statements" in r else "—",
                         f"≤ {CEILINGS[unit]} {measure.replace('_', ' ')}", "met" if value <= CEILINGS[unit] else "missed"])
    note = ("" if summary["pg_stat_statements"] else
            "\n\n`pg_stat_statements` is not loaded on this server (it needs `shared_preload_libraries` and a restart, "
            "which the bench does not do on a shared server): statements are counted from the Peewee connection's "
            "query hook, and BEGIN / COMMIT / ROLLBACK beside them, for "
            f"{summary['payments']} payments of each kind.")
    return table(["unit", "statements", "round trips (with BEGIN/COMMIT)", "transactions", "pg_stat_statements calls",
                  "ceiling", "verdict"], rows) + note
