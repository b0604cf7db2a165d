"""The chat door: answers Telegram waits for, measured at the webhook at the ingest benchmark's concurrency.

A pre-checkout query is answered in the webhook's response; a join query (`chat_join_request`
with a `query_id`) is decided in the request and answered with a Bot API call to the stand-in
before the response: `paywall` for strangers (`sendChatJoinRequestWebApp`), `queue` for a chat no
entitlement lists. Telegram waits 10 seconds for either; the target is p99 < 1 s.
"""
from __future__ import annotations

import itertools
import secrets

from bench import client, config, payloads
from bench.cpu import CpuMeter, postgres_backends
from bench.report import median, table
from bench.services import Stack

CHAT = -1009000000001
OPEN_CHAT = -1009000000002
TARGET_P99_MS = 1000.0
_ids = itertools.count(5_000_000)


def _plans_file(stack: Stack):
    path = stack.workdir / "plans.toml"
    path.write_text((config.ROOT / "plans.toml").read_text() + f'\n[entitlements.premium]\ntitle = "Premium"\nchats = [{CHAT}]\n')
    return path


def _join_query(user: int, chat: int) -> dict:
    update = payloads.telegram_updates().join_request_update(user, chat, query_id=f"bench-{secrets.token_hex(8)}")
    update["update_id"] = next(_ids)
    return payloads.telegram_request(update)


def _pre_checkout(user: int) -> dict:
    plan = payloads.TELEGRAM_PLAN
    update = payloads.telegram_updates().pre_checkout_query_update(user, payloads.invoice_payload(plan, user), payloads.STARS_PRICE)
    update["update_id"] = next(_ids)
    return payloads.telegram_request(update)


def _measure(stack: Stack, items: list[dict]) -> dict:
    f = client.write_requests(items)
    with CpuMeter({"web": stack.web_workers, "postgres": postgres_backends(stack.sql, stack.database)}) as cpu:
        result = client.load(stack.url, f, concurrency=config.CONCURRENCY, duration=config.RUN_SECONDS)
    return {k: result[k] for k in ("ok_rps", "p50_ms", "p99_ms", "statuses")} | {"cpu_ms": cpu.per_unit_ms(result["completed"])}


SCENARIOS = {
    "pre-checkout query (answered in the response)": lambda i: _pre_checkout(3_000_000 + i),
    "join query, stranger (paywall: sendChatJoinRequestWebApp)": lambda i: _join_query(3_100_000 + i, CHAT),
    "join query, unlisted chat (answerChatJoinRequestQuery queue)": lambda i: _join_query(3_200_000 + i, OPEN_CHAT),
}


def run() -> dict:
    """Each scenario `config.RUNS` times against gunicorn + PostgreSQL + the Bot API stand-in, workers stopped."""
    stack = Stack(config.DATABASE)
    per_run: list[dict] = []
    try:
        stack.start_fakes()
        stack.extra_env["PLANS_FILE"] = str(_plans_file(stack))
        stack.migrate()
        stack.start_web()
        count = int(config.RUN_SECONDS * 1500)
        for _ in range(config.RUNS):
            stack.reset()
            stack.sql('TRUNCATE "join_query" RESTART IDENTITY')
            per_run.append({name: _measure(stack, [make(i) for i in range(count)]) for name, make in SCENARIOS.items()})
    finally:
        stack.stop()
    summary = {"runs": per_run, "concurrency": config.CONCURRENCY, "seconds": config.RUN_SECONDS}
    summary["median"] = {
        name: {k: median([r[name][k] for r in per_run]) for k in ("ok_rps", "p50_ms", "p99_ms")}
        | {f"cpu_{kind}_ms": median([r[name]["cpu_ms"][kind] for r in per_run]) for kind in ("web", "postgres")}
        for name in SCENARIOS
    }
    return summary


def render(summary: dict) -> str:
    """The chat door's table: p50/p99 of each answer Telegram waits for, against the 1 s target."""
    rows = []
    for name, m in summary["median"].items():
        rows.append([name, m["ok_rps"], m["p50_ms"], m["p99_ms"], f"{m['cpu_web_ms']:.2f}", f"{m['cpu_postgres_ms']:.2f}",
                     f"< {TARGET_P99_MS:.0f} ms", "met" if m["p99_ms"] < TARGET_P99_MS else "missed"])
    head = (f"Concurrency {summary['concurrency']}, {summary['seconds']:g} s per measurement, median of {len(summary['runs'])} "
            "run(s); web CPU and PostgreSQL CPU per request from /proc.\n\n")
    return head + table(["webhook", "ok/s", "p50 ms", "p99 ms", "web CPU ms/req", "PG CPU ms/req", "target p99", "verdict"], rows)
