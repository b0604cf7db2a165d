"""Reconciliation against a Star ledger of 10,000 transactions: how long it takes and how many Bot API calls.

The ledger is the Telegram stand-in's (`simulate.telegram_api`), served over HTTP on this
machine; the database is BENCH_RECONCILE_DATABASE_URL (default: a fresh SQLite file). Three runs:
a first one that finds everything missing and records it, a second that finds everything known,
and a routine one from the cursor after 100 new payments.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench import config

TRANSACTIONS = 10_000
TOKEN = "7000000001:AAFbenchReconcileToken0123456789abcdefgh"


def _fill(api, count: int, now: int, *, first_user: int = 1) -> None:
    """Payments, with every twentieth refunded and every fiftieth something else (a withdrawal)."""
    from app.telegram import payments

    for i in range(count):
        date = now - (count - i) * 30
        user = first_user + i
        if i % 50 == 49:
            api.add_star_transaction({"amount": 100, "date": date, "receiver": {"type": "fragment"}})
            continue
        tx = api.star_payment(user, 75, payments.encode_payload("premium_week", user), date=date)
        if i % 20 == 19:
            api.star_refund(tx["id"], date=date + 1)


def _settings(database_url: str, api_url: str):
    from app.config import load_settings

    env = {"DATABASE_URL": database_url, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": api_url,
           "PLANS_FILE": str(config.ROOT / "plans.toml"), "ENTITLE_ENV": "test"}
    return load_settings(environ=env, env_file="/nonexistent")


def _measure(label: str, settings, api, **kwargs) -> dict:
    from app.reconcile import runs, service

    calls_before = len(api.calls_to("getStarTransactions"))
    started = time.perf_counter()
    report = service.reconcile("telegram", settings, **kwargs)
    runs.finish("telegram", report=report)
    elapsed = time.perf_counter() - started
    summary = report.summary()
    return {"run": label, "seconds": round(elapsed, 2), "found": summary["found"], "known": summary["known"],
            "recorded": summary["recorded"], "listed": summary["listed"],
            "bot_api_calls": len(api.calls_to("getStarTransactions")) - calls_before}


def run() -> dict:
    """Fill a ledger, then reconcile it three ways; returns the figures."""
    from app import db, migrations
    from simulate.telegram_api import FakeTelegramAPI

    workdir = Path(tempfile.mkdtemp(prefix="entitle-reconcile-bench-"))
    database_url = os.environ.get("BENCH_RECONCILE_DATABASE_URL") or f"sqlite:///{workdir / 'entitle.db'}"
    with FakeTelegramAPI() as api:
        now = int(time.time())
        _fill(api, round(TRANSACTIONS / 1.05), now)  # refunds are ledger entries of their own
        while len(api.star_transactions) < TRANSACTIONS:
            api.add_star_transaction({"amount": 100, "date": now - 1, "receiver": {"type": "telegram_ads"}})
        size = len(api.star_transactions)
        settings = _settings(database_url, api.url)
        db.bind(settings.database_url)
        migrations.migrate()
        rows = [_measure("first (all missing)", settings, api), _measure("again (all known)", settings, api)]
        _fill(api, 100, int(time.time()) + 100 * 30, first_user=10_000_000)
        rows.append(_measure("routine, from the cursor (100 new)", settings, api, routine=True))
    return {"ledger": size, "database": "PostgreSQL" if database_url.startswith("postgres") else "SQLite", "rows": rows}


def render(results: dict) -> str:
    """The figures as a Markdown table."""
    from bench import report

    lines = [
        report.machine_line(report.machine()),
        "",
        f"A Star ledger of {results['ledger']:,} transactions (payments, 1 in 20 refunded, 1 in 50 a withdrawal), "
        f"read from the Telegram stand-in over HTTP; database {results['database']}. "
        "Recording only: granting is the workers' usual inbox path.",
        "",
        "| run | seconds | found | already known | recorded | listed (not granted) | Bot API calls |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(f"| {row['run']} | {row['seconds']} | {row['found']:,} | {row['known']:,} | {row['recorded']:,} | "
                     f"{row['listed']:,} | {row['bot_api_calls']} |")
    return "\n".join(lines)
